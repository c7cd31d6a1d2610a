// @kforge entry: sum_dim_f32
// @kforge about: naive: one scalar f32 sum per row
extern "C" void sum_dim_f32(const float* x, float* y, int M, int N) {
  for (int m = 0; m < M; ++m) {
    float sum = 0.0f;
    for (int n = 0; n < N; ++n) sum += x[(long)m * N + n];
    y[m] = sum;
  }
}
