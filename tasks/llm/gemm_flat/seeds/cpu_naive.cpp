// @kforge entry: gemm_flat_f32
// @kforge about: naive: one scalar float dot product per output element, token by token
extern "C" void gemm_flat_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float sum = 0.0f;
      for (int k = 0; k < K; ++k) sum += A[(long)m * K + k] * W[(long)n * K + k];
      C[(long)m * N + n] = sum;
    }
}
