// @kforge entry: gemv_f32
// @kforge about: streams W at DRAM speed: intrinsics picked at compile time (VEC 16 = AVX-512, 8 = AVX2+FMA, scalar fallback), ROWS rows share each x load, UNROLL vectors per row in flight (one accumulator each), optional software prefetch PF floats ahead, row blocks split over OpenMP threads statically or in CHUNK-block pieces handed out on demand; with SPREAD (static split) each thread cuts its rows into ROWS parts and reads them side by side, ROWS long sequential streams
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=8 in {1,2,4,8}
// @kforge param: UNROLL=1 in {1,2,4}
// @kforge param: PF=0 in {0,256,512,1024}
// @kforge param: SCHED=0 in {0,1,2}
// @kforge param: CHUNK=8 in {1,4,8,32}
// @kforge param: SPREAD=1 in {0,1}
// @kforge param: PAR_THRESHOLD=65536 in {65536,262144,1048576,4194304,16777216,67108864,2147483647}
//
// A decode step reads every weight once from DRAM, so the kernel's job is to keep enough loads in
// flight: ROWS x UNROLL independent streams of FMAs, each row a separate sequential stream for
// the hardware prefetcher, x loaded once per ROWS rows. SCHED: 0 = one contiguous range of row
// blocks per thread (what OpenBLAS does), 1 = dynamic, CHUNK blocks at a time (ggml hands out
// chunks on demand too: on shared cores a descheduled thread no longer holds the whole call up),
// 2 = static round-robin of CHUNK blocks. SPREAD (with SCHED 0): the ROWS rows done together are
// a part apart, not adjacent, so each is one long stream (1.07-1.18x at the decode's shapes,
// weights cold, on the AMD EPYC VM: the prefetchers ramp up once per call, not once per row).
// PAR_THRESHOLD: below N*K weights one thread does it all (waking the team costs more than it
// saves on busy shared cores; the search picks per machine).
#include <immintrin.h>

#include <cstddef>
#include <omp.h>

#if VEC == 16 && defined(__AVX512F__)
#define KF_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define KF_AVX2 1
#endif

namespace {

#if defined(KF_AVX512)
constexpr int kWidth = 16;
using vf = __m512;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline float vsum(vf a) { return _mm512_reduce_add_ps(a); }
#elif defined(KF_AVX2)
constexpr int kWidth = 8;
using vf = __m256;
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline float vsum(vf a) {
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
#endif

// y[r * step] = W[r * step, :] . x for R rows `step` rows apart, the first at w.
template <int R>
inline void dot_rows(const float* __restrict w, long K, const float* __restrict x, float* __restrict y,
                     long step = 1) {
  const long stride = step * K;
  float sums[R] = {};
  long k = 0;
#if defined(KF_AVX512) || defined(KF_AVX2)
  constexpr int kStep = kWidth * UNROLL;
  vf acc[R][UNROLL];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < UNROLL; ++u) acc[r][u] = vzero();
  for (; k + kStep <= K; k += kStep) {
#if PF > 0
    // One prefetch per 64-byte line of each row's step; past the row's end it is only a hint.
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < kStep; c += 16) _mm_prefetch((const char*)(w + r * stride + k + PF + c), _MM_HINT_T0);
#endif
    for (int u = 0; u < UNROLL; ++u) {
      const vf xv = vload(x + k + u * kWidth);
      for (int r = 0; r < R; ++r) acc[r][u] = vfma(vload(w + r * stride + k + u * kWidth), xv, acc[r][u]);
    }
  }
  for (; k + kWidth <= K; k += kWidth) {
    const vf xv = vload(x + k);
    for (int r = 0; r < R; ++r) acc[r][0] = vfma(vload(w + r * stride + k), xv, acc[r][0]);
  }
#if defined(KF_AVX512)
  if (k < K) {  // the K tail in one masked step: masked-off lanes are never read
    const __mmask16 mask = (__mmask16)((1u << (K - k)) - 1);
    const vf xv = _mm512_maskz_loadu_ps(mask, x + k);
    for (int r = 0; r < R; ++r) acc[r][0] = vfma(_mm512_maskz_loadu_ps(mask, w + r * stride + k), xv, acc[r][0]);
    k = K;
  }
#endif
  for (int r = 0; r < R; ++r) {
    vf total = acc[r][0];
    for (int u = 1; u < UNROLL; ++u) total = vadd(total, acc[r][u]);
    sums[r] = vsum(total);
  }
#endif
  // Scalar: the K tail of the AVX2 path, the whole row without SIMD intrinsics.
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r) sums[r] += w[r * stride + k] * x[k];
  for (int r = 0; r < R; ++r) y[r * step] = sums[r];
}

// Row block b: ROWS rows, or the rows left at the end one at a time.
inline void do_block(const float* W, const float* x, float* y, long N, long K, long b) {
  const long n0 = b * ROWS;
  if (n0 + ROWS <= N) {
    dot_rows<ROWS>(W + n0 * K, K, x, y + n0);
  } else {
    for (long n = n0; n < N; ++n) dot_rows<1>(W + n * K, K, x, y + n);
  }
}

}  // namespace

// Rows [n0, n1) as ROWS long streams: the range cut in ROWS equal parts, row j of every part
// done together, so each part is read front to back as one sequential stream for the whole call
// (consecutive rows would make ROWS streams of one row each, restarted every block).
inline void spread_rows(const float* W, const float* x, float* y, long n0, long n1, long K) {
  const long part = (n1 - n0) / ROWS;
  for (long j = 0; j < part; ++j) dot_rows<ROWS>(W + (n0 + j) * K, K, x, y + n0 + j, part);
  for (long n = n0 + part * ROWS; n < n1; ++n) dot_rows<1>(W + n * K, K, x, y + n);
}

extern "C" void gemv_f32(const float* W, const float* x, float* y, int N, int K) {
#pragma omp parallel if ((long)N * K >= PAR_THRESHOLD)
  {
#if SPREAD && SCHED == 0
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    spread_rows(W, x, y, (long)N * t / nt, (long)N * (t + 1) / nt, K);
#else
    const long blocks = ((long)N + ROWS - 1) / ROWS;
#if SCHED == 1
#pragma omp for schedule(dynamic, CHUNK) nowait
#elif SCHED == 2
#pragma omp for schedule(static, CHUNK) nowait
#else
#pragma omp for schedule(static) nowait
#endif
    for (long b = 0; b < blocks; ++b) do_block(W, x, y, N, K, b);
#endif
  }
}
