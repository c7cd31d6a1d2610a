// @kforge entry: bias_gelu_f32
// @kforge about: naive: one element at a time with std::tanh
#include <cmath>

extern "C" void bias_gelu_f32(const float* x, const float* b, float* y, int M, int N) {
  const float k = 0.7978845608f;  // sqrt(2 / pi)
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      const float u = x[m * N + n] + b[n];
      y[m * N + n] = 0.5f * u * (1.0f + std::tanh(k * (u + 0.044715f * u * u * u)));
    }
}
