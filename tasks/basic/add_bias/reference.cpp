// @kforge entry: add_bias_reference
// @kforge about: the oracle: one f32 add per element
extern "C" void add_bias_reference(const float* x, const float* b, float* y, int M, int N) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) y[m * N + n] = x[m * N + n] + b[n];
}
