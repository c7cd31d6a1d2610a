// @kforge entry: add_rmsnorm_f32
// @kforge about: explicit AVX-512/AVX2 (VEC): add, store the residual and sum squares in one pass (UNROLL accumulators), then a scale pass; rows in dynamic chunks across OpenMP threads above PAR_THRESHOLD elements; non-temporal stores for a y of NT_MIN_BYTES or more; with PREFETCH the scale pass (pipelined: the summing loop) pulls the next row into L2; with PIPELINE (streamed rows of whole vectors) one loop scales row m out while it sums row m + 1, so reads and streamed writes overlap as in a copy
// @kforge param: VEC=16 in {8,16}
// @kforge param: UNROLL=4 in {1,2,4}
// @kforge param: PAR_THRESHOLD=524288 in {65536,262144,524288,1048576,4194304,2147483647}
// @kforge param: CHUNK_ROWS=64 in {1,4,16,64}
// @kforge param: NT_MIN_BYTES=33554432 in {0,4194304,33554432,134217728,1099511627776}
// @kforge param: PREFETCH=1 in {0,1}
// @kforge param: PIPELINE=1 in {0,1}
// (PAR_THRESHOLD=2147483647 never starts threads: the choice for a machine whose other cores are busy.)
#include <cmath>
#include <cstdint>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

// The scale pass reads only cached data: with PREFETCH it asks for the next row (into L2) as it
// goes, so memory stays busy between the sum-of-squares passes instead of idling. The pipelined
// loop asks for the row after the one it sums, a row ahead of its reads (the pair measured 92-100%
// of the op's memory twin at the DRAM shape, against 76-90% for either alone).
static inline void prefetch_l2(const float* p) {
#if PREFETCH && (defined(__AVX2__) || defined(__AVX512F__))
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1);
#else
  (void)p;
#endif
}

// One vector type per path, picked at compile time: AVX-512 where VEC=16 and the CPU has it,
// else AVX2+FMA, else scalar (W = 1), so the same code is correct on any x86-64 or elsewhere.
#if VEC == 16 && defined(__AVX512F__)
#define W 16
typedef __m512 vf;
static inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline void vstream(float* p, vf v) { _mm512_stream_ps(p, v); }
static inline vf vset1(float a) { return _mm512_set1_ps(a); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline float vsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline void vfence() { _mm_sfence(); }
#elif defined(__AVX2__) && defined(__FMA__)
#define W 8
typedef __m256 vf;
static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline void vstream(float* p, vf v) { _mm256_stream_ps(p, v); }
static inline vf vset1(float a) { return _mm256_set1_ps(a); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline float vsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline void vfence() { _mm_sfence(); }
#else
#define W 1
typedef float vf;
static inline vf vload(const float* p) { return *p; }
static inline void vstore(float* p, vf v) { *p = v; }
static inline void vstream(float* p, vf v) { *p = v; }
static inline vf vset1(float a) { return a; }
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline float vsum(vf v) { return v; }
static inline void vfence() {}
#endif

// residual += x and the sum of squares of the new residual, in one pass. The residual is stored
// with plain stores: its lines were just read, so there is no read for ownership to save, and
// the scale pass reads them again from L1/L2.
static inline float add_sum_squares(const float* __restrict x, float* __restrict r, int N) {
  vf acc[UNROLL];
  for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(0.0f);
  int n = 0;
  for (; n + UNROLL * W <= N; n += UNROLL * W)
    for (int u = 0; u < UNROLL; ++u) {
      const vf v = vadd(vload(r + n + u * W), vload(x + n + u * W));
      vstore(r + n + u * W, v);
      acc[u] = vfma(v, v, acc[u]);
    }
  for (; n + W <= N; n += W) {
    const vf v = vadd(vload(r + n), vload(x + n));
    vstore(r + n, v);
    acc[0] = vfma(v, v, acc[0]);
  }
  for (int u = 1; u < UNROLL; ++u) acc[0] = vadd(acc[0], acc[u]);
  float total = vsum(acc[0]);
  for (; n < N; ++n) {
    r[n] += x[n];
    total += r[n] * r[n];
  }
  return total;
}

// y = r * w * scale. With NT the body goes out in non-temporal stores (aligned: a scalar head
// first), so a y larger than the cache costs one write to memory and no read for ownership.
template <bool NT>
static inline void scale_row(const float* __restrict x, const float* __restrict w, float* __restrict y, int N,
                             float scale, const float* next_x, const float* next_r) {
  int n = 0;
  if (NT) {
    int head = (int)((-(std::uintptr_t)y / sizeof(float)) & (W - 1));
    head = head < N ? head : N;
    for (; n < head; ++n) y[n] = x[n] * scale * w[n];
  }
  const vf s = vset1(scale);
  for (; n + W <= N; n += W) {
    prefetch_l2(next_x + n);
    prefetch_l2(next_r + n);
    const vf v = vmul(vmul(vload(x + n), s), vload(w + n));
    if (NT) vstream(y + n, v); else vstore(y + n, v);
  }
  for (; n < N; ++n) y[n] = x[n] * scale * w[n];
}

template <bool NT>
static inline void add_norm_row(const float* x, float* r, const float* w, float* y, int N, float eps,
                                const float* next_x, const float* next_r) {
  const float scale = 1.0f / std::sqrt(add_sum_squares(x, r, N) / N + eps);
  scale_row<NT>(r, w, y, N, scale, next_x, next_r);
}

// Rows [m0, m1) with PIPELINE, software-pipelined: one loop adds and sums row m + 1 and scales
// row m out, so the memory reads x and the residual while y streams out, as in a copy, instead of
// a read-only pass and then a write-only one. Same sums in the same order as add_norm_row, so the
// same results. Needs streamed whole vectors (N a multiple of UNROLL * W, y aligned): else row by row.
template <bool NT>
static void rows(const float* x, float* r, const float* w, float* y, int m0, int m1, int N, float eps) {
  const bool pipelined = PIPELINE && NT && W > 1 && N % (UNROLL * W) == 0 &&
                         (std::uintptr_t)y % (W * sizeof(float)) == 0;
  if (!pipelined) {
    for (int m = m0; m < m1; ++m) {
      const long next = (long)(m + 1 < m1 ? m + 1 : m) * N;
      add_norm_row<NT>(x + (long)m * N, r + (long)m * N, w, y + (long)m * N, N, eps, x + next, r + next);
    }
    return;
  }
  float scale = 1.0f / std::sqrt(add_sum_squares(x + (long)m0 * N, r + (long)m0 * N, N) / N + eps);
  for (int m = m0; m + 1 < m1; ++m) {
    const float* rm = r + (long)m * N;
    const float* xn = x + (long)(m + 1) * N;
    float* rn = r + (long)(m + 1) * N;
    float* ym = y + (long)m * N;
    const vf s = vset1(scale);
    vf acc[UNROLL];
    for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(0.0f);
    for (int n = 0; n < N; n += UNROLL * W)
      for (int u = 0; u < UNROLL; ++u) {
        const int i = n + u * W;
        prefetch_l2(xn + N + i);
        prefetch_l2(rn + N + i);
        const vf v = vadd(vload(rn + i), vload(xn + i));
        vstore(rn + i, v);
        acc[u] = vfma(v, v, acc[u]);
        vstream(ym + i, vmul(vmul(vload(rm + i), s), vload(w + i)));
      }
    for (int u = 1; u < UNROLL; ++u) acc[0] = vadd(acc[0], acc[u]);
    scale = 1.0f / std::sqrt(vsum(acc[0]) / N + eps);
  }
  const long last = (long)(m1 - 1) * N;
  scale_row<NT>(r + last, w, y + last, N, scale, x + last, r + last);
}

template <bool NT>
static void run(const float* x, float* r, const float* w, float* y, int M, int N, float eps) {
  // Threads cost microseconds to wake: a plain loop below the threshold. Above it, dynamic chunks
  // of CHUNK_ROWS, so a thread that starts late (a busy core) takes fewer chunks instead of holding
  // up the rest.
  if ((long)M * N < PAR_THRESHOLD) {
    rows<NT>(x, r, w, y, 0, M, N, eps);
  } else {
    const int chunks = (M + CHUNK_ROWS - 1) / CHUNK_ROWS;
#pragma omp parallel
    {
#pragma omp for schedule(dynamic) nowait
      for (int c = 0; c < chunks; ++c)
        rows<NT>(x, r, w, y, c * CHUNK_ROWS, (c + 1) * CHUNK_ROWS < M ? (c + 1) * CHUNK_ROWS : M, N, eps);
      if (NT) vfence();  // this thread's streamed stores are visible before the join
    }
  }
  if (NT) vfence();
}

extern "C" void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N, float eps) {
  if ((long)M * N * (long)sizeof(float) >= (long)NT_MIN_BYTES)
    run<true>(x, residual, w, y, M, N, eps);
  else
    run<false>(x, residual, w, y, M, N, eps);
}
