// @kforge entry: scale_avx2
// @kforge about: eight floats at a time with AVX2 intrinsics; no compile for a target without AVX (x86-64-v2)
#include <immintrin.h>
extern "C" void scale_avx2(const float* x, float* y, int N, float alpha) {
  const __m256 a = _mm256_set1_ps(alpha);
  int i = 0;
  for (; i + 8 <= N; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(a, _mm256_loadu_ps(x + i)));
  for (; i < N; ++i) y[i] = alpha * x[i];
}
