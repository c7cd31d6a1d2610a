// @kforge entry: embedding_reference
// @kforge about: the oracle: one element at a time
extern "C" void embedding_reference(const float* table, const int* ids, float* y, int M, int V, int D) {
  for (long m = 0; m < M; ++m)
    for (long d = 0; d < D; ++d) y[m * D + d] = table[long(ids[m]) * D + d];
}
