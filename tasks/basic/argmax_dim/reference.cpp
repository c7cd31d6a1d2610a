// @kforge entry: argmax_dim_reference
// @kforge about: the oracle: a scalar scan per row keeping the first maximum
extern "C" void argmax_dim_reference(const float* x, int* idx, int M, int N) {
  for (long m = 0; m < M; ++m) {
    long best = 0;
    for (long n = 1; n < N; ++n)
      if (x[m * N + n] > x[m * N + best]) best = n;
    idx[m] = int(best);
  }
}
