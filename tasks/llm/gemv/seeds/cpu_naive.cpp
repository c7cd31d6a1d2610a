// @kforge entry: gemv_f32
// @kforge about: naive: one scalar float dot product per output row
extern "C" void gemv_f32(const float* W, const float* x, float* y, int N, int K) {
  for (int n = 0; n < N; ++n) {
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += W[(long)n * K + k] * x[k];
    y[n] = sum;
  }
}
