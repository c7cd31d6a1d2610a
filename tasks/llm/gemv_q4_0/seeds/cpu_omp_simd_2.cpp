// @kforge entry: gemv_q4_0
// @kforge about: ROWS rows share each block of x (loaded once, kept in registers), each row with 4 / ROWS independent accumulators; both nibble halves of a block unpacked with one mask / shift each and widened straight to f32, 16 (VEC=16, AVX-512) or 8 at a time, d applied once per block; optional software prefetch PF blocks ahead; rows over OpenMP threads
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=1 in {1,2,4,8}
// @kforge param: PF=0 in {0,8,16,32}
// @kforge param: PAR_THRESHOLD=65536 in {65536,262144,1048576,1073741824}
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

#if VEC == 16 && defined(__AVX512F__)
#define WIDE 1
#endif

// R rows n0 .. n0 + R - 1 of y. Each row keeps C independent accumulators (blocks taken in turn),
// so that with few rows the FMA latency does not serialize the blocks.
template <int R>
static inline void rows_dot(const block_q4_0* W, const float* x, int n0, int blocks, float* y) {
  constexpr int C = R >= 4 ? 1 : 4 / R;
  const block_q4_0* row[R];
  for (int r = 0; r < R; ++r) row[r] = W + (long)(n0 + r) * blocks;
#if defined(__AVX2__) && defined(__FMA__)
  const __m128i low_mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
#endif
#if defined(WIDE)
  // Per block: low nibbles (elements 0..15) and high nibbles (16..31), minus 8, each one zmm of
  // f32; two products with x's block, then d times their sum into the row's 16 lanes.
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  auto step = [&](int b, int c) {
    const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
    for (int r = 0; r < R; ++r) {
      if (PF) _mm_prefetch(reinterpret_cast<const char*>(row[r] + b + PF), _MM_HINT_T0);
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r][b].qs));
      const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, low_mask), eight);
      const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask), eight);
      const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), x1,
                                       _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), x0));
      acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(row[r][b].d)), t, acc[r][c]);
    }
  };
  int b = 0;
  for (; b + C <= blocks; b += C)
    for (int c = 0; c < C; ++c) step(b + c, c);
  for (; b < blocks; ++b) step(b, 0);
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) acc[r][0] = _mm512_add_ps(acc[r][0], acc[r][c]);
    y[n0 + r] = _mm512_reduce_add_ps(acc[r][0]);
  }
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  auto step = [&](int b, int c) {
    const float* xb = x + 32 * b;
    const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                 x3 = _mm256_loadu_ps(xb + 24);
    for (int r = 0; r < R; ++r) {
      if (PF) _mm_prefetch(reinterpret_cast<const char*>(row[r] + b + PF), _MM_HINT_T0);
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r][b].qs));
      const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, low_mask), eight);                      // elements 0..15
      const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask), eight);  // 16..31
      auto widen = [](__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); };
      // two independent chains, so the FMAs of a block do not wait on each other
      const __m256 t = _mm256_add_ps(_mm256_fmadd_ps(widen(_mm_srli_si128(lo, 8)), x1, _mm256_mul_ps(widen(lo), x0)),
                                     _mm256_fmadd_ps(widen(_mm_srli_si128(hi, 8)), x3, _mm256_mul_ps(widen(hi), x2)));
      acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(row[r][b].d)), t, acc[r][c]);
    }
  };
  int b = 0;
  for (; b + C <= blocks; b += C)
    for (int c = 0; c < C; ++c) step(b + c, c);
  for (; b < blocks; ++b) step(b, 0);
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][c]);
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[r][0]), _mm256_extractf128_ps(acc[r][0], 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    y[n0 + r] = _mm_cvtss_f32(v);
  }
#else
  for (int r = 0; r < R; ++r) {
    float lo[16] = {}, hi[16] = {};  // lanes for elements j and j + 16 of every block
    for (int b = 0; b < blocks; ++b) {
      const float d = half_to_float(row[r][b].d);
      const float* __restrict xb = x + 32 * b;
#pragma omp simd
      for (int j = 0; j < 16; ++j) {
        lo[j] += d * ((row[r][b].qs[j] & 0x0F) - 8) * xb[j];
        hi[j] += d * ((row[r][b].qs[j] >> 4) - 8) * xb[j + 16];
      }
    }
    float sum = 0.0f;
    for (int j = 0; j < 16; ++j) sum += lo[j] + hi[j];
    y[n0 + r] = sum;
  }
#endif
}

extern "C" void gemv_q4_0(const void* W, const float* x, float* y, int N, int K) {
  const block_q4_0* blocks = static_cast<const block_q4_0*>(W);
  const int per_row = K / 32, full = N / ROWS * ROWS;
#pragma omp parallel for schedule(static) if ((long)N * K >= PAR_THRESHOLD)
  for (int n0 = 0; n0 < full; n0 += ROWS) rows_dot<ROWS>(blocks, x, n0, per_row, y);
  for (int n = full; n < N; ++n) rows_dot<1>(blocks, x, n, per_row, y);
}
