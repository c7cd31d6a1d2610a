// @kforge entry: sgd_momentum_f32
// @kforge about: naive: one parameter at a time, as the formula reads
extern "C" void sgd_momentum_f32(float* param, const float* grad, float* buf, int N, float lr, float momentum,
                                 float weight_decay) {
  for (int i = 0; i < N; ++i) {
    const float g = grad[i] + weight_decay * param[i];
    buf[i] = momentum * buf[i] + g;
    param[i] -= lr * buf[i];
  }
}
