// @kforge entry: sgd_momentum_reference
// @kforge about: the oracle: torch.optim.SGD's momentum update in double, rounded to f32 once per stored value
extern "C" void sgd_momentum_reference(float* param, const float* grad, float* buf, int N, float lr, float momentum,
                                       float weight_decay) {
  for (long i = 0; i < N; ++i) {
    const double g = double(grad[i]) + double(weight_decay) * param[i];
    const float b = float(double(momentum) * buf[i] + g);
    buf[i] = b;
    param[i] = float(param[i] - double(lr) * b);
  }
}
