// @kforge entry: matmul_bias_relu_reference
// @kforge about: the oracle: each dot product and the bias in double, then the ReLU
extern "C" void matmul_bias_relu_reference(const float* x, const float* W, const float* b, float* y, int M, int N,
                                           int K) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) {
      double sum = b[n];
      for (long k = 0; k < K; ++k) sum += double(x[m * K + k]) * W[n * K + k];
      y[m * N + n] = float(sum > 0 ? sum : 0.0);
    }
}
