// @kforge entry: scatter_add_f32
// @kforge about: naive: src rows added into out one element at a time, in index order
extern "C" void scatter_add_f32(const float* src, const int* idx, float* out, int M, int V, int D) {
  for (int i = 0; i < M; ++i)
    for (int d = 0; d < D; ++d) out[(long)idx[i] * D + d] += src[(long)i * D + d];
}
