// @kforge entry: gemv_q4_0
// @kforge about: ROWS rows per step share each block of x; rows across OpenMP threads; AVX2: nibbles unpacked and widened 8 at a time, d applied once per block (omp simd lanes without AVX2)
// @kforge param: ROWS=2 in {1,2,4}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <immintrin.h>

#include <cmath>
#include <cstdint>

struct block_q4_0 {
  uint16_t d;
  uint8_t qs[16];  // element j: low nibble of qs[j]; element j + 16: its high nibble
};

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

extern "C" void gemv_q4_0(const void* W, const float* x, float* y, int N, int K) {
  const block_q4_0* blocks = static_cast<const block_q4_0*>(W);
  const int per_row = K / 32;
#pragma omp parallel for schedule(static) if ((long)N * K >= PAR_THRESHOLD)
  for (int n0 = 0; n0 < N; n0 += ROWS) {
    const int rows = N - n0 < ROWS ? N - n0 : ROWS;
#if defined(__AVX2__) && defined(__FMA__)
    // Per block: both nibbles of the 16 bytes, minus 8, widened 8 at a time; the 32 products in
    // four vectors, then d times their sum into the row's lanes.
    const __m128i low_mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    __m256 acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < per_row; ++b) {
      const float* xb = x + b * 32;
      const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                   x3 = _mm256_loadu_ps(xb + 24);
      for (int r = 0; r < rows; ++r) {
        const block_q4_0& block = blocks[(long)(n0 + r) * per_row + b];
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.qs));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, low_mask), eight);                      // elements 0..15
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask), eight);  // 16..31
        auto widen = [](__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); };
        __m256 t = _mm256_mul_ps(widen(lo), x0);
        t = _mm256_fmadd_ps(widen(_mm_srli_si128(lo, 8)), x1, t);
        t = _mm256_fmadd_ps(widen(hi), x2, t);
        t = _mm256_fmadd_ps(widen(_mm_srli_si128(hi, 8)), x3, t);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(block.d)), t, acc[r]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
      v = _mm_add_ps(v, _mm_movehl_ps(v, v));
      v = _mm_add_ss(v, _mm_movehdup_ps(v));
      y[n0 + r] = _mm_cvtss_f32(v);
    }
#else
    float lo[ROWS][16] = {}, hi[ROWS][16] = {};  // lanes for elements j and j + 16 of every block
    for (int b = 0; b < per_row; ++b) {
      const float* __restrict xb = x + b * 32;
      for (int r = 0; r < rows; ++r) {
        const block_q4_0& block = blocks[(long)(n0 + r) * per_row + b];
        const float d = half_to_float(block.d);
#pragma omp simd
        for (int j = 0; j < 16; ++j) {
          lo[r][j] += d * ((block.qs[j] & 0x0F) - 8) * xb[j];
          hi[r][j] += d * ((block.qs[j] >> 4) - 8) * xb[j + 16];
        }
      }
    }
    for (int r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int j = 0; j < 16; ++j) sum += lo[r][j] + hi[r][j];
      y[n0 + r] = sum;
    }
#endif
  }
}
