// @kforge entry: mse_loss_f32
// @kforge about: naive: scalar loop, f32 squares into a double accumulator (an f32 one drifts by ~1e-3 at N = 1M)
extern "C" void mse_loss_f32(const float* pred, const float* target, float* loss, int N) {
  double sum = 0.0;
  for (int i = 0; i < N; ++i) {
    const float d = pred[i] - target[i];
    sum += d * d;
  }
  loss[0] = (float)(sum / N);
}
