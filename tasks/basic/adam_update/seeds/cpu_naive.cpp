// @kforge entry: adam_update_f32
// @kforge about: naive: one parameter at a time, as the formula reads
#include <cmath>

extern "C" void adam_update_f32(float* param, const float* grad, float* m, float* v, int N, float lr, float beta1,
                                float beta2, float eps, int step) {
  const float c1 = 1 - std::pow(beta1, (float)step), c2 = 1 - std::pow(beta2, (float)step);
  for (int i = 0; i < N; ++i) {
    const float g = grad[i];
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    param[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
  }
}
