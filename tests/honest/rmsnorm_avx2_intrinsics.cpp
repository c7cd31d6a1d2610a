// @kforge entry: rmsnorm_f32
// @kforge about: AVX2 intrinsics for the sum of squares and the scaling, a scalar tail (scalar code without AVX2)
#include <cmath>
#ifdef __AVX2__
#include <immintrin.h>
#endif
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float* out = y + (long)m * N;
    int n = 0;
    float ss = 0;
#ifdef __AVX2__
    __m256 acc = _mm256_setzero_ps();
    for (; n + 8 <= N; n += 8) {
      __m256 v = _mm256_loadu_ps(row + n);
      acc = _mm256_add_ps(acc, _mm256_mul_ps(v, v));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) ss += l;
#endif
    for (; n < N; ++n) ss += row[n] * row[n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    n = 0;
#ifdef __AVX2__
    const __m256 s = _mm256_set1_ps(scale);
    for (; n + 8 <= N; n += 8)
      _mm256_storeu_ps(out + n, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(row + n), s), _mm256_loadu_ps(w + n)));
#endif
    for (; n < N; ++n) out[n] = row[n] * scale * w[n];
  }
}
