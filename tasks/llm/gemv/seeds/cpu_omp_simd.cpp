// @kforge entry: gemv_f32
// @kforge about: ROWS output rows per step share each load of x; rows across OpenMP threads; SIMD dots
// @kforge param: ROWS=4 in {1,2,4,8}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}

extern "C" void gemv_f32(const float* W, const float* x, float* y, int N, int K) {
  const int full = N / ROWS * ROWS;
#pragma omp parallel if ((long)N * K >= PAR_THRESHOLD)
  {
#pragma omp for schedule(static) nowait
    for (int n0 = 0; n0 < full; n0 += ROWS) {
      float sums[ROWS] = {};
      const float* __restrict rows = W + (long)n0 * K;
#pragma omp simd reduction(+ : sums[:ROWS])
      for (int k = 0; k < K; ++k)
        for (int r = 0; r < ROWS; ++r) sums[r] += rows[(long)r * K + k] * x[k];
      for (int r = 0; r < ROWS; ++r) y[n0 + r] = sums[r];
    }
#pragma omp for schedule(static)
    for (int n = full; n < N; ++n) {
      const float* __restrict row = W + (long)n * K;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int k = 0; k < K; ++k) sum += row[k] * x[k];
      y[n] = sum;
    }
  }
}
