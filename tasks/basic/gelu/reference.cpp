// @kforge entry: gelu_reference
// @kforge about: the oracle: the tanh formula in double
#include <cmath>

extern "C" void gelu_reference(const float* x, float* y, int M, int N) {
  const double c = std::sqrt(2.0 / M_PI);
  for (long i = 0; i < long(M) * N; ++i) {
    const double v = x[i];
    y[i] = float(0.5 * v * (1.0 + std::tanh(c * (v + 0.044715 * v * v * v))));
  }
}
