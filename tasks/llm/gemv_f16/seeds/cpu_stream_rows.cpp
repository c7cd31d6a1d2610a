// @kforge entry: gemv_f16
// @kforge about: streams the halves at DRAM speed: F16C conversion picked at compile time (VEC 16 = AVX-512 _mm512_cvtph_ps, 8 = AVX2 _mm256_cvtph_ps, scalar fallback), ROWS rows share each x load, UNROLL vectors per row in flight, optional prefetch PF halves ahead, row blocks over OpenMP threads statically or CHUNK blocks on demand
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=8 in {1,2,4,8}
// @kforge param: UNROLL=1 in {1,2,4}
// @kforge param: PF=0 in {0,512,1024,2048}
// @kforge param: SCHED=1 in {0,1,2}
// @kforge param: CHUNK=8 in {1,4,8,32}
// @kforge param: PAR_THRESHOLD=4194304 in {65536,262144,1048576,4194304,16777216,67108864,2147483647}
//
// The same streaming design as llm/gemv's cpu_stream_rows: at 2 bytes per weight the conversion
// (one vcvtph2ps per 8 or 16 weights) and the FMA must keep pace with memory, so every row of a
// block is its own sequential stream and x is loaded once per ROWS rows. SCHED: 0 = one
// contiguous range of blocks per thread, 1 = dynamic CHUNK blocks (a descheduled thread on shared
// cores no longer holds the call up), 2 = static round-robin CHUNK blocks. PAR_THRESHOLD: below
// N*K weights one thread does it all (waking the team costs more than it saves on busy cores).
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if VEC == 16 && defined(__AVX512F__)
#define KF_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define KF_AVX2 1
#endif

namespace {

// Exact IEEE binary16 to float (as the naive seed): the fields shifted into place, then rebiased
// by 2^112, which also normalizes subnormals; infinities and NaN keep an all-ones exponent.
inline float half_to_float(uint16_t h) {
#ifdef __F16C__
  return _cvtsh_ss(h);
#else
  uint32_t bits = uint32_t(h & 0x7FFF) << 13;
  float magnitude;
  std::memcpy(&magnitude, &bits, 4);
  magnitude *= 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = (h & 0x3FF) ? NAN : INFINITY;
  return (h & 0x8000) ? -magnitude : magnitude;
#endif
}

#if defined(KF_AVX512)
constexpr int kWidth = 16;
using vf = __m512;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline vf vhalves(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline float vsum(vf a) { return _mm512_reduce_add_ps(a); }
#elif defined(KF_AVX2)
constexpr int kWidth = 8;
using vf = __m256;
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline vf vhalves(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline float vsum(vf a) {
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
#endif

// y[r] = float(W[r, :]) . x for R consecutive rows starting at w.
template <int R>
inline void dot_rows(const uint16_t* __restrict w, long K, const float* __restrict x, float* __restrict y) {
  float sums[R] = {};
  long k = 0;
#if defined(KF_AVX512) || defined(KF_AVX2)
  constexpr int kStep = kWidth * UNROLL;
  vf acc[R][UNROLL];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < UNROLL; ++u) acc[r][u] = vzero();
  for (; k + kStep <= K; k += kStep) {
#if PF > 0
    // One prefetch per 64-byte line (32 halves) of each row's step; past the end only a hint.
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < kStep; c += 32) _mm_prefetch((const char*)(w + r * K + k + PF + c), _MM_HINT_T0);
#endif
    for (int u = 0; u < UNROLL; ++u) {
      const vf xv = vload(x + k + u * kWidth);
      for (int r = 0; r < R; ++r) acc[r][u] = vfma(vhalves(w + r * K + k + u * kWidth), xv, acc[r][u]);
    }
  }
  for (; k + kWidth <= K; k += kWidth) {
    const vf xv = vload(x + k);
    for (int r = 0; r < R; ++r) acc[r][0] = vfma(vhalves(w + r * K + k), xv, acc[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    vf total = acc[r][0];
    for (int u = 1; u < UNROLL; ++u) total = vadd(total, acc[r][u]);
    sums[r] = vsum(total);
  }
#endif
  // Scalar: the K tail (under one vector), or the whole row without F16C.
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r) sums[r] += half_to_float(w[r * K + k]) * x[k];
  for (int r = 0; r < R; ++r) y[r] = sums[r];
}

// Row block b: ROWS rows, or the rows left at the end one at a time.
inline void do_block(const uint16_t* W, const float* x, float* y, long N, long K, long b) {
  const long n0 = b * ROWS;
  if (n0 + ROWS <= N) {
    dot_rows<ROWS>(W + n0 * K, K, x, y + n0);
  } else {
    for (long n = n0; n < N; ++n) dot_rows<1>(W + n * K, K, x, y + n);
  }
}

}  // namespace

extern "C" void gemv_f16(const uint16_t* W, const float* x, float* y, int N, int K) {
  const long blocks = ((long)N + ROWS - 1) / ROWS;
#pragma omp parallel if ((long)N * K >= PAR_THRESHOLD)
  {
#if SCHED == 1
#pragma omp for schedule(dynamic, CHUNK) nowait
#elif SCHED == 2
#pragma omp for schedule(static, CHUNK) nowait
#else
#pragma omp for schedule(static) nowait
#endif
    for (long b = 0; b < blocks; ++b) do_block(W, x, y, N, K, b);
  }
}
