// @kforge entry: embedding_f32
// @kforge about: naive: one token at a time, a scalar copy loop per row
extern "C" void embedding_f32(const float* table, const int* ids, float* y, int M, int V, int D) {
  for (int m = 0; m < M; ++m) {
    const float* row = table + (long)ids[m] * D;
    for (int d = 0; d < D; ++d) y[(long)m * D + d] = row[d];
  }
}
