// @kforge entry: bias_gelu_reference
// @kforge about: the oracle: the bias add in f32 (as torch's x + b), then the tanh GELU in double
#include <cmath>

extern "C" void bias_gelu_reference(const float* x, const float* b, float* y, int M, int N) {
  const double k = std::sqrt(2.0 / M_PI);
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      const double u = x[m * N + n] + b[n];
      y[m * N + n] = float(0.5 * u * (1 + std::tanh(k * (u + 0.044715 * u * u * u))));
    }
}
