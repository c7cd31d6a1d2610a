// Exemplar for the reduction category: task basic/sum_dim.
// y[m] = sum_n x[m,n] (sum over the last dimension).
// Arguments: x f32[M,N] in, y f32[M] out, M, N.
// @kforge entry: sum_dim_f32
// @kforge about: rows across OpenMP threads, each row LANES independent SIMD accumulators (hides the add latency)
// @kforge param: LANES=32 in {8,16,32,64}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
extern "C" void sum_dim_f32(const float* x, float* y, int M, int N) {
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    // LANES partial sums: with 32 floats, two AVX-512 (or four AVX2) accumulators in flight.
    float acc[LANES] = {};
    int n = 0;
    for (; n + LANES <= N; n += LANES)
#pragma omp simd
      for (int j = 0; j < LANES; ++j) acc[j] += row[n + j];
    float sum = 0.0f;
    for (int j = 0; j < LANES; ++j) sum += acc[j];
    for (; n < N; ++n) sum += row[n];
    y[m] = sum;
  }
}
