// @kforge entry: gemm_flat_reference
// @kforge about: the oracle: scalar dot products in double
extern "C" void gemm_flat_reference(const float* A, const float* W, float* C, int M, int N, int K) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      double sum = 0;
      for (long k = 0; k < K; ++k) sum += double(A[m * K + k]) * W[n * K + k];
      C[m * N + n] = float(sum);
    }
}
