// @kforge entry: lmhead_argmax_f32
// @kforge about: the argmax fused into a streaming gemv: intrinsics picked at compile time (VEC 16 = AVX-512, 8 = AVX2+FMA, scalar fallback), ROWS vocabulary rows share each x load, UNROLL vectors per row in flight, optional prefetch PF floats ahead; each OpenMP thread keeps its best (larger logit, then lower index) over its row blocks, merged at the end; with SPREAD (SCHED 0) each thread cuts its rows into ROWS parts read side by side, ROWS long sequential streams
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=8 in {1,2,4,8}
// @kforge param: UNROLL=1 in {1,2,4}
// @kforge param: PF=0 in {0,256,512,1024}
// @kforge param: SCHED=0 in {0,1,2}
// @kforge param: CHUNK=8 in {1,4,8,32}
// @kforge param: SPREAD=1 in {0,1}
// @kforge param: PAR_THRESHOLD=4194304 in {65536,262144,1048576,4194304,16777216,67108864,2147483647}
//
// llm/gemv's cpu_stream_rows with the logits never stored: a block's ROWS dot products go
// straight into the thread's running best. The order in which threads meet rows does not matter,
// since "beats" breaks ties by index, so the merged answer is the reference's: the largest logit,
// the lowest index among equals. SCHED: 0 = one contiguous range of blocks per thread, 1 = dynamic
// CHUNK blocks, 2 = static round-robin CHUNK blocks. PAR_THRESHOLD: below V*K weights one thread
// does it all.
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

// y[r] = W[r * step, :] . x for R rows `step` rows apart, the first at w.
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
  for (int r = 0; r < R; ++r) y[r] = sums[r];
}

// Whether (value, index) a beats b: larger value, then lower index (b_index < 0: no best yet).
inline bool beats(float a, long a_index, float b, long b_index) {
  return b_index < 0 || a > b || (a == b && a_index < b_index);
}

// Offers (logit, index) to the running best.
inline void offer(float logit, long index, float& best, long& best_index) {
  if (beats(logit, index, best, best_index)) {
    best = logit;
    best_index = index;
  }
}

// Rows [n0, n1) as ROWS long streams: the range cut in ROWS equal parts, row j of every part done
// together, so each part is read front to back as one sequential stream for the whole call.
inline void spread_rows(const float* W, const float* x, long n0, long n1, long K, float& best, long& best_index) {
  const long part = (n1 - n0) / ROWS;
  float logits[ROWS];
  for (long j = 0; j < part; ++j) {
    dot_rows<ROWS>(W + (n0 + j) * K, K, x, logits, part);
    for (int r = 0; r < ROWS; ++r) offer(logits[r], n0 + j + r * part, best, best_index);
  }
  for (long n = n0 + part * ROWS; n < n1; ++n) {
    dot_rows<1>(W + n * K, K, x, logits);
    offer(logits[0], n, best, best_index);
  }
}

// Row block b's logits (ROWS rows, or the rows left at the end one at a time) into (best, best_index).
inline void do_block(const float* W, const float* x, long V, long K, long b, float& best, long& best_index) {
  const long n0 = b * ROWS;
  float logits[ROWS];
  long rows = ROWS;
  if (n0 + ROWS <= V) {
    dot_rows<ROWS>(W + n0 * K, K, x, logits);
  } else {
    rows = V - n0;
    for (long r = 0; r < rows; ++r) dot_rows<1>(W + (n0 + r) * K, K, x, logits + r);
  }
  for (long r = 0; r < rows; ++r) offer(logits[r], n0 + r, best, best_index);
}

}  // namespace

extern "C" void lmhead_argmax_f32(const float* W, const float* x, int* token, int V, int K) {
  float best = 0.0f;
  long best_index = -1;
#pragma omp parallel if ((long)V * K >= PAR_THRESHOLD)
  {
    float mine = 0.0f;
    long mine_index = -1;
#if SPREAD && SCHED == 0
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    spread_rows(W, x, (long)V * t / nt, (long)V * (t + 1) / nt, K, mine, mine_index);
#else
    const long blocks = ((long)V + ROWS - 1) / ROWS;
#if SCHED == 1
#pragma omp for schedule(dynamic, CHUNK) nowait
#elif SCHED == 2
#pragma omp for schedule(static, CHUNK) nowait
#else
#pragma omp for schedule(static) nowait
#endif
    for (long b = 0; b < blocks; ++b) do_block(W, x, V, K, b, mine, mine_index);
#endif
#pragma omp critical
    if (mine_index >= 0 && beats(mine, mine_index, best, best_index)) {
      best = mine;
      best_index = mine_index;
    }
  }
  token[0] = (int)best_index;
}
