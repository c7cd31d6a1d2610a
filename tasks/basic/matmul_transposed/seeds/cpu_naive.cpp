// @kforge entry: matmul_transposed_f32
// @kforge about: naive: one f32 dot product per output, both operands read down a column
extern "C" void matmul_transposed_f32(const float* A, const float* B, float* C, int M, int N, int K) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float sum = 0.0f;
      for (int k = 0; k < K; ++k) sum += A[(long)k * M + m] * B[(long)k * N + n];
      C[(long)m * N + n] = sum;
    }
}
