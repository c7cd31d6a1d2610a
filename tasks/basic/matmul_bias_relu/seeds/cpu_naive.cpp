// @kforge entry: matmul_bias_relu_f32
// @kforge about: naive: one dot product per output with an f32 accumulator, then bias and ReLU
extern "C" void matmul_bias_relu_f32(const float* x, const float* W, const float* b, float* y, int M, int N, int K) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float sum = 0.0f;
      for (int k = 0; k < K; ++k) sum += x[(long)m * K + k] * W[(long)n * K + k];
      sum += b[n];
      y[(long)m * N + n] = sum > 0.0f ? sum : 0.0f;
    }
}
