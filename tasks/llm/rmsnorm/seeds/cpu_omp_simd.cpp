// @kforge entry: rmsnorm_f32
// @kforge about: rows across OpenMP threads (when there is enough work), SIMD sum of squares
// @kforge param: PAR_THRESHOLD=65536 in {4096,16384,65536,262144,1048576}
#include <cmath>

extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  // Threads cost a few microseconds to wake: only worth it above PAR_THRESHOLD elements.
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    float* __restrict out = y + (long)m * N;
    float sum_squares = 0.0f;
#pragma omp simd reduction(+ : sum_squares)
    for (int n = 0; n < N; ++n) sum_squares += row[n] * row[n];
    const float scale = 1.0f / std::sqrt(sum_squares / N + eps);
#pragma omp simd
    for (int n = 0; n < N; ++n) out[n] = row[n] * scale * w[n];
  }
}
