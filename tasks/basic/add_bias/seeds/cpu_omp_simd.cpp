// @kforge entry: add_bias_f32
// @kforge about: rows across OpenMP threads above PAR_THRESHOLD elements, a SIMD loop per row
// @kforge param: PAR_THRESHOLD=262144 in {16384,65536,262144,1048576,4194304}

static inline void add_row(const float* __restrict in, const float* __restrict b, float* __restrict out, int N) {
#pragma omp simd
  for (int n = 0; n < N; ++n) out[n] = in[n] + b[n];
}

extern "C" void add_bias_f32(const float* x, const float* b, float* y, int M, int N) {
  // Small tensors stay on one thread: waking the team costs microseconds.
  if ((long)M * N < PAR_THRESHOLD) {
    for (int m = 0; m < M; ++m) add_row(x + (long)m * N, b, y + (long)m * N, N);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) add_row(x + (long)m * N, b, y + (long)m * N, N);
}
