// @kforge entry: matmul_transposed_reference
// @kforge about: the oracle: triple loop, dot products in double
extern "C" void matmul_transposed_reference(const float* A, const float* B, float* C, int M, int N, int K) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      double sum = 0;
      for (long k = 0; k < K; ++k) sum += double(A[k * M + m]) * B[k * N + n];
      C[m * N + n] = float(sum);
    }
}
