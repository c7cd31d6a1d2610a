// @kforge entry: swiglu_f32
// @kforge about: naive: one element at a time with std::exp
#include <cmath>

extern "C" void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  for (long i = 0; i < (long)M * N; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
