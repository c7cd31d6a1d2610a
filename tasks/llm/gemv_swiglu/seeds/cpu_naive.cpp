// @kforge entry: gemv_swiglu_f32
// @kforge about: naive: per output row, two scalar float dot products, then silu with std::exp
#include <cmath>

extern "C" void gemv_swiglu_f32(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  for (int n = 0; n < N; ++n) {
    float g = 0.0f, u = 0.0f;
    for (int k = 0; k < K; ++k) {
      g += W1[(long)n * K + k] * x[k];
      u += W3[(long)n * K + k] * x[k];
    }
    y[n] = g / (1.0f + std::exp(-g)) * u;
  }
}
