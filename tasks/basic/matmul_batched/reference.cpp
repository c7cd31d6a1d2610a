// @kforge entry: matmul_batched_reference
// @kforge about: the oracle: triple loop per batch entry, dot products in double
extern "C" void matmul_batched_reference(const float* A, const float* B, float* C, int BATCH, int M, int N, int K) {
  for (long b = 0; b < BATCH; ++b)
    for (long m = 0; m < M; ++m)
      for (long n = 0; n < N; ++n) {
        double sum = 0;
        for (long k = 0; k < K; ++k) sum += double(A[(b * M + m) * K + k]) * B[(b * K + k) * N + n];
        C[(b * M + m) * N + n] = float(sum);
      }
}
