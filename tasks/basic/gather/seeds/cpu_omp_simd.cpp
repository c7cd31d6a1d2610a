// @kforge entry: gather_f32
// @kforge about: rows across OpenMP threads, SIMD hardware gathers within a row (the row of x stays in L1/L2)
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
extern "C" void gather_f32(const float* x, const int* idx, float* y, int M, int N, int J) {
#pragma omp parallel for schedule(static) if ((long)M * J >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    const int* __restrict ids = idx + (long)m * J;
    float* __restrict out = y + (long)m * J;
#pragma omp simd
    for (int j = 0; j < J; ++j) out[j] = row[ids[j]];
  }
}
