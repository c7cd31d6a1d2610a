// @kforge entry: add_rmsnorm_f32
// @kforge about: add and sum of squares in one SIMD pass, then a SIMD scale pass; rows across OpenMP threads only above PAR_THRESHOLD elements
// @kforge param: PAR_THRESHOLD=1048576 in {16384,65536,262144,1048576,4194304}
#include <cmath>

static inline void add_norm_row(const float* __restrict in, float* __restrict row, const float* __restrict w,
                                float* __restrict out, int N, float eps) {
  float sum_squares = 0.0f;
#pragma omp simd reduction(+ : sum_squares)
  for (int n = 0; n < N; ++n) {
    const float r = row[n] + in[n];
    row[n] = r;
    sum_squares += r * r;
  }
  const float scale = 1.0f / std::sqrt(sum_squares / N + eps);
#pragma omp simd
  for (int n = 0; n < N; ++n) out[n] = row[n] * scale * w[n];
}

extern "C" void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N, float eps) {
  // A plain loop below the threshold: even `omp parallel if (false)` costs microseconds here.
  if ((long)M * N < PAR_THRESHOLD) {
    for (int m = 0; m < M; ++m)
      add_norm_row(x + (long)m * N, residual + (long)m * N, w, y + (long)m * N, N, eps);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) add_norm_row(x + (long)m * N, residual + (long)m * N, w, y + (long)m * N, N, eps);
}
