// @kforge entry: sum_dim_reference
// @kforge about: the oracle: scalar sums in double
extern "C" void sum_dim_reference(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    double sum = 0;
    for (long n = 0; n < N; ++n) sum += x[m * N + n];
    y[m] = float(sum);
  }
}
