// @kforge entry: cumsum_reference
// @kforge about: the oracle: a running sum in double, left to right
extern "C" void cumsum_reference(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    double sum = 0;
    for (long n = 0; n < N; ++n) {
      sum += x[m * N + n];
      y[m * N + n] = float(sum);
    }
  }
}
