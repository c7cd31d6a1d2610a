// @kforge entry: gelu_f32
// @kforge about: naive: one element at a time with std::tanh
#include <cmath>

extern "C" void gelu_f32(const float* x, float* y, int M, int N) {
  for (long i = 0; i < (long)M * N; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
  }
}
