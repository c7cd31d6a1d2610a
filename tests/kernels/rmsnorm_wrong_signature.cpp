// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: takes double eps where the task passes a float
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, double eps) {
  for (long i = 0; i < (long)M * N; ++i) y[i] = x[i] * w[i % N] / std::sqrt(eps);
}
