// @kforge entry: argmax_dim_f32
// @kforge about: naive: one scalar scan per row, strict > keeps the first maximum
extern "C" void argmax_dim_f32(const float* x, int* idx, int M, int N) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float best = row[0];
    int best_index = 0;
    for (int n = 1; n < N; ++n)
      if (row[n] > best) {
        best = row[n];
        best_index = n;
      }
    idx[m] = best_index;
  }
}
