// @kforge entry: swiglu_reference
// @kforge about: the oracle: silu and the product in double
#include <cmath>

extern "C" void swiglu_reference(const float* gate, const float* up, float* y, int M, int N) {
  for (long i = 0; i < long(M) * N; ++i) {
    const double g = gate[i];
    y[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
  }
}
