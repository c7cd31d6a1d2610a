// @kforge entry: adam_update_reference
// @kforge about: the oracle: torch.optim.Adam's update in double, rounded to f32 once per stored value
#include <cmath>

extern "C" void adam_update_reference(float* param, const float* grad, float* m, float* v, int N, float lr,
                                      float beta1, float beta2, float eps, int step) {
  const double c1 = 1 - std::pow(double(beta1), step), c2 = 1 - std::pow(double(beta2), step);
  for (long i = 0; i < N; ++i) {
    const double g = grad[i];
    const float m_new = float(beta1 * double(m[i]) + (1 - double(beta1)) * g);
    const float v_new = float(beta2 * double(v[i]) + (1 - double(beta2)) * g * g);
    m[i] = m_new;
    v[i] = v_new;
    param[i] = float(param[i] - lr / c1 * m_new / (std::sqrt(double(v_new)) / std::sqrt(c2) + eps));
  }
}
