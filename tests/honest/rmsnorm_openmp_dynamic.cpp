// @kforge entry: rmsnorm_f32
// @kforge about: OpenMP over rows with dynamic scheduling, and an OpenMP SIMD reduction inside each row
// @kforge param: CHUNK=2 in {1,2,4,8}
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
#pragma omp parallel for schedule(dynamic, CHUNK) if (M > 1)
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int n = 0; n < N; ++n) ss += row[n] * row[n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
#pragma omp simd
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = row[n] * scale * w[n];
  }
}
