// @kforge entry: add_bias_f32
// @kforge about: naive: a double loop, one thread
extern "C" void add_bias_f32(const float* x, const float* b, float* y, int M, int N) {
  for (long m = 0; m < M; ++m)
    for (long n = 0; n < N; ++n) y[m * N + n] = x[m * N + n] + b[n];
}
