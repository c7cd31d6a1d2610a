// @kforge entry: add_rmsnorm_f32
// @kforge about: rows across OpenMP threads (when there is enough work), add and sum of squares in one SIMD pass
// @kforge param: PAR_THRESHOLD=1048576 in {16384,65536,262144,1048576,4194304}
#include <cmath>

extern "C" void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N, float eps) {
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict in = x + (long)m * N;
    float* __restrict row = residual + (long)m * N;
    float* __restrict out = y + (long)m * N;
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
}
