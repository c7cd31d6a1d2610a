// @kforge entry: gemv_q8_0
// @kforge about: ROWS rows per step share each block of x; rows across OpenMP threads; AVX2: int8 to float 8 at a time, d applied once per block (omp simd lanes without AVX2)
// @kforge param: ROWS=2 in {1,2,4}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <immintrin.h>

#include <cmath>
#include <cstdint>

struct block_q8_0 {
  uint16_t d;
  int8_t qs[32];
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

extern "C" void gemv_q8_0(const void* W, const float* x, float* y, int N, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const int per_row = K / 32;
#pragma omp parallel for schedule(static) if ((long)N * K >= PAR_THRESHOLD)
  for (int n0 = 0; n0 < N; n0 += ROWS) {
    const int rows = N - n0 < ROWS ? N - n0 : ROWS;
#if defined(__AVX2__) && defined(__FMA__)
    // Per block: the 32 products q * x in four vectors, then d times their sum into the row's lanes.
    __m256 acc[ROWS];
    for (int r = 0; r < ROWS; ++r) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < per_row; ++b) {
      const float* xb = x + b * 32;
      const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                   x3 = _mm256_loadu_ps(xb + 24);
      for (int r = 0; r < rows; ++r) {
        const block_q8_0& block = blocks[(long)(n0 + r) * per_row + b];
        auto q = [&](int g) {
          return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(block.qs + 8 * g))));
        };
        __m256 t = _mm256_mul_ps(q(0), x0);
        t = _mm256_fmadd_ps(q(1), x1, t);
        t = _mm256_fmadd_ps(q(2), x2, t);
        t = _mm256_fmadd_ps(q(3), x3, t);
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
    float acc[ROWS][32] = {};  // lane j sums element j of every block
    for (int b = 0; b < per_row; ++b) {
      const float* __restrict xb = x + b * 32;
      for (int r = 0; r < rows; ++r) {
        const block_q8_0& block = blocks[(long)(n0 + r) * per_row + b];
        const float d = half_to_float(block.d);
#pragma omp simd
        for (int j = 0; j < 32; ++j) acc[r][j] += d * block.qs[j] * xb[j];
      }
    }
    for (int r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int j = 0; j < 32; ++j) sum += acc[r][j];
      y[n0 + r] = sum;
    }
#endif
  }
}
