// @kforge entry: gather_reference
// @kforge about: the oracle: one indexed load per output
extern "C" void gather_reference(const float* x, const int* idx, float* y, int M, int N, int J) {
  for (long m = 0; m < M; ++m)
    for (long j = 0; j < J; ++j) y[m * J + j] = x[m * N + idx[m * J + j]];
}
