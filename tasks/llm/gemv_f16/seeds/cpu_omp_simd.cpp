// @kforge entry: gemv_f16
// @kforge about: ROWS rows per step share each load of x; rows across OpenMP threads; 8 halves at a time through F16C and FMA
// @kforge param: ROWS=4 in {1,2,4,8}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <immintrin.h>

#include <cmath>
#include <cstdint>

static inline float half_to_float(uint16_t h) {
#ifdef __F16C__
  return _cvtsh_ss(h);
#else
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  const float magnitude = exponent == 0    ? std::ldexp(float(mantissa), -24)
                          : exponent == 31 ? (mantissa ? NAN : INFINITY)
                                           : std::ldexp(float(1024 + mantissa), exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
#endif
}

extern "C" void gemv_f16(const uint16_t* W, const float* x, float* y, int N, int K) {
  const int vectorized = K / 8 * 8;
#pragma omp parallel for schedule(static) if ((long)N * K >= PAR_THRESHOLD)
  for (int n0 = 0; n0 < N; n0 += ROWS) {
    const int rows = N - n0 < ROWS ? N - n0 : ROWS;
    const uint16_t* __restrict w = W + (long)n0 * K;
    float sums[ROWS] = {};
    int k = 0;
#if defined(__F16C__) && defined(__FMA__)
    __m256 acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm256_setzero_ps();
    for (; k < vectorized; k += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k);
      for (int r = 0; r < rows; ++r) {
        const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (long)r * K + k));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtph_ps(halves), xv, acc[r]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
      v = _mm_add_ps(v, _mm_movehl_ps(v, v));
      v = _mm_add_ss(v, _mm_movehdup_ps(v));
      sums[r] = _mm_cvtss_f32(v);
    }
#endif
    for (; k < K; ++k)
      for (int r = 0; r < rows; ++r) sums[r] += half_to_float(w[(long)r * K + k]) * x[k];
    for (int r = 0; r < rows; ++r) y[n0 + r] = sums[r];
  }
}
