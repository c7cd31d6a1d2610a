// @kforge entry: gemv_reference
// @kforge about: the oracle: scalar dot products in double
extern "C" void gemv_reference(const float* W, const float* x, float* y, int N, int K) {
  for (long n = 0; n < N; ++n) {
    double sum = 0;
    for (long k = 0; k < K; ++k) sum += double(W[n * K + k]) * x[k];
    y[n] = float(sum);
  }
}
