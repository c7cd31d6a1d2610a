// @kforge entry: cumsum_f32
// @kforge about: naive: a running f32 sum per row, left to right
extern "C" void cumsum_f32(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    float sum = 0.0f;
    for (long n = 0; n < N; ++n) {
      sum += x[m * N + n];
      y[m * N + n] = sum;
    }
  }
}
