// @kforge entry: mse_loss_reference
// @kforge about: the oracle: scalar loop, squares summed in double
extern "C" void mse_loss_reference(const float* pred, const float* target, float* loss, int N) {
  double sum = 0;
  for (long i = 0; i < N; ++i) {
    const double d = double(pred[i]) - target[i];
    sum += d * d;
  }
  loss[0] = float(sum / N);
}
