// @kforge entry: gemv_swiglu_reference
// @kforge about: the oracle: both dot products, silu and the product in double
#include <cmath>

extern "C" void gemv_swiglu_reference(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  for (long n = 0; n < N; ++n) {
    double g = 0, u = 0;
    for (long k = 0; k < K; ++k) {
      g += double(W1[n * K + k]) * x[k];
      u += double(W3[n * K + k]) * x[k];
    }
    y[n] = float(g / (1.0 + std::exp(-g)) * u);
  }
}
