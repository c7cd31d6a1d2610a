// @kforge entry: matmul_batched_f32
// @kforge about: naive: triple loop per batch entry, one f32 dot product per output (B read down a column)
extern "C" void matmul_batched_f32(const float* A, const float* B, float* C, int BATCH, int M, int N, int K) {
  for (int b = 0; b < BATCH; ++b) {
    const float* a = A + (long)b * M * K;
    const float* bb = B + (long)b * K * N;
    float* c = C + (long)b * M * N;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        float sum = 0.0f;
        for (int k = 0; k < K; ++k) sum += a[(long)m * K + k] * bb[(long)k * N + n];
        c[(long)m * N + n] = sum;
      }
  }
}
