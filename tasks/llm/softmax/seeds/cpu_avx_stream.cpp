// @kforge entry: softmax_f32
// @kforge about: explicit AVX-512/AVX2 (VEC) max, polynomial exp in base 2 (degree EXP_DEGREE) + sum, scale passes with UNROLL accumulators; rows in dynamic chunks across OpenMP threads (a row split across threads when there are fewer rows than threads) above PAR_THRESHOLD; for a y of NT_MIN_BYTES or more y is written once with non-temporal stores, the exps kept in a per-thread scratch row in cache or (RECOMPUTE) computed again as y streams out; with PREFETCH_NEXT each thread takes a contiguous block of rows and prefetches its next row while it computes the exps of the current one; with PIPELINE (NT rows, whole vectors) one loop streams out y of a thread's row m while it takes the exps of row m + 1, block by block, kept as f16 (relative error 2^-11, 10x inside the task's rtol) in one scratch row
// @kforge param: VEC=16 in {8,16}
// @kforge param: UNROLL=4 in {1,2,4}
// @kforge param: PAR_THRESHOLD=65536 in {65536,262144,1048576,4194304,2147483647}
// @kforge param: CHUNK_ROWS=1 in {1,4,16}
// @kforge param: NT_MIN_BYTES=33554432 in {0,4194304,33554432,134217728,1099511627776}
// @kforge param: PREFETCH_NEXT=1 in {0,1}
// @kforge param: RECOMPUTE=1 in {0,1}
// @kforge param: EXP_DEGREE=4 in {3,4}
// @kforge param: PIPELINE=0 in {0,1}
// (PAR_THRESHOLD=2147483647 never starts threads: the choice for a machine whose other cores are busy.)
#include <cmath>
#include <cstdlib>
#include <omp.h>
#include <cstdint>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

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
#if W == 16
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline float vhmax(vf v) { return _mm512_reduce_max_ps(v); }
#elif W == 8
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline float vhmax(vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
#else
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline float vhmax(vf v) { return v; }
#endif

// exp(x - max) on a vector, in base 2: t = x log2 e - max log2 e (one fused op, t <= 0), k = round(t),
// f = t - k in [-1/2, 1/2], 2^f by a polynomial fitted for relative error over that interval, and 2^k
// into the exponent: AVX-512's scalef handles any k (underflow to 0), AVX2's bit trick needs t >= -126.
// Degree 4 errs by 3.4e-6, degree 3 by 1.0e-4 (50x inside the task's rtol): every instruction counts,
// since with RECOMPUTE each exp is computed twice and the exps, not the memory, bound this kernel.
#if W > 1
static inline vf vexp2_poly(vf f) {
#if EXP_DEGREE == 3
  vf p = vset1(5.523205184e-02f);
  p = vfma(p, f, vset1(2.429619734e-01f));
  p = vfma(p, f, vset1(6.932887906e-01f));
  return vfma(p, f, vset1(9.999078696e-01f));
#else
  vf p = vset1(9.573363051e-03f);
  p = vfma(p, f, vset1(5.595529295e-02f));
  p = vfma(p, f, vset1(2.402506674e-01f));
  p = vfma(p, f, vset1(6.931173268e-01f));
  return vfma(p, f, vset1(9.999990410e-01f));
#endif
}
#endif
#if W == 16
// m_log2e = max * log2(e), broadcast. t is clamped at -150 (exp underflows to 0 below -149):
// scalef(poly(-inf - -inf), -inf) is NaN by the ISA's rules, and a masked score is -inf.
static inline vf vexp_below(vf x, vf m_log2e) {
  const vf t = _mm512_max_ps(_mm512_fmsub_ps(x, vset1(1.44269504f), m_log2e), vset1(-150.0f));
  const vf k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_scalef_ps(vexp2_poly(_mm512_sub_ps(t, k)), k);
}
#elif W == 8
static inline vf vexp_below(vf x, vf m_log2e) {
  const vf t = _mm256_max_ps(_mm256_fmsub_ps(x, vset1(1.44269504f), m_log2e), vset1(-126.0f));
  const vf k = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return vmul(vexp2_poly(_mm256_sub_ps(t, k)), _mm256_castsi256_ps(bits));
}
#else
static inline vf vexp_below(vf x, vf m_log2e) { return std::exp2(x * 1.44269504f - m_log2e); }
#endif

static float row_max(const float* __restrict x, long n0, long n1) {
  float best = x[n0];
  long n = n0;
  if (n1 - n0 >= UNROLL * W) {
    vf acc[UNROLL];
    for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(x[n0]);
    for (; n + UNROLL * W <= n1; n += UNROLL * W)
      for (int u = 0; u < UNROLL; ++u) acc[u] = vmax(acc[u], vload(x + n + u * W));
    for (int u = 1; u < UNROLL; ++u) acc[0] = vmax(acc[0], acc[u]);
    best = vhmax(acc[0]);
  }
  for (; n < n1; ++n) best = x[n] > best ? x[n] : best;
  return best;
}

// The row this thread does next (as long as this one) is prefetched a line at a time, spread over
// `parts` passes of the current row, so that its trip from memory overlaps their work instead of
// stalling the next row's max pass: the line `n / parts` floats into `next`, once per line.
// (PARTS is a constant: the division and the test compile to a shift and a mask.)
template <int PARTS>
static inline void prefetch_next(const float* next, long n) {
#if W > 1
  if (next && ((n / PARTS) * (long)sizeof(float)) % 64 < W * (long)sizeof(float) / PARTS)
    _mm_prefetch((const char*)(next + n / PARTS), _MM_HINT_T0);
#endif
}

// The sum of exp(x[n] - max) for n in [n0, n1), each also stored to e[n] when e is given.
template <int PARTS = 1>
static float exp_sum(const float* __restrict x, float* __restrict e, long n0, long n1, float max_value,
                     const float* next = nullptr) {
  vf acc[UNROLL];
  for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(0.0f);
  const vf m = vset1(max_value * 1.44269504f);
  long n = n0;
  for (; n + UNROLL * W <= n1; n += UNROLL * W)
    for (int u = 0; u < UNROLL; ++u) {
      prefetch_next<PARTS>(next, n - n0 + u * W);
      const vf v = vexp_below(vload(x + n + u * W), m);
      if (e) vstore(e + n + u * W, v);
      acc[u] = vadd(acc[u], v);
    }
  for (int u = 1; u < UNROLL; ++u) acc[0] = vadd(acc[0], acc[u]);
  float sum = vsum(acc[0]);
  for (; n < n1; ++n) {
    const float v = std::exp(x[n] - max_value);
    if (e) e[n] = v;
    sum += v;
  }
  return sum;
}

// y[n] = v[n] * inverse for n in [n0, n1), where v[n] is src[n] (the stored exps; src may be y
// itself), or with EXP exp(src[n] - max) computed again from x. With NT the body goes out in
// non-temporal stores (aligned: a scalar head first).
template <bool NT, bool EXP, int PARTS = 1>
static void scale(const float* src, float* y, long n0, long n1, float max_value, float inverse,
                  const float* next = nullptr) {
  auto one = [&](long n) { return (EXP ? std::exp(src[n] - max_value) : src[n]) * inverse; };
  long n = n0;
  if (NT) {
    long head = n0 + (long)((-(std::uintptr_t)(y + n0) / sizeof(float)) & (W - 1));
    head = head < n1 ? head : n1;
    for (; n < head; ++n) y[n] = one(n);
  }
  const vf s = vset1(inverse), m = vset1(max_value * 1.44269504f);
  for (; n + W <= n1; n += W) {
    prefetch_next<PARTS>(next, n - n0);
    const vf v = vmul(EXP ? vexp_below(vload(src + n), m) : vload(src + n), s);
    if (NT) vstream(y + n, v); else vstore(y + n, v);
  }
  for (; n < n1; ++n) y[n] = one(n);
}

// One row. With NT, y is written once, streamed: no read for ownership and no second trip of y
// through the memory bus. The exps either stay in a scratch row in this thread's cache, or, with
// RECOMPUTE, are computed twice (summed, then again as y streams out), so that x is the only row
// in cache and the prefetched next row arrives over both passes, while y goes out.
template <bool NT>
static void softmax_row(const float* x, float* y, float* scratch, long N, const float* next = nullptr) {
  const float max_value = row_max(x, 0, N);
  if (NT && RECOMPUTE) {
    const float sum = exp_sum<2>(x, nullptr, 0, N, max_value, next);
    scale<true, true, 2>(x, y, 0, N, max_value, 1.0f / sum, next ? next + N / 2 : nullptr);
    return;
  }
  float* e = NT ? scratch : y;
  const float sum = exp_sum(x, e, 0, N, max_value, next);
  scale<NT, false>(e, y, 0, N, 0.0f, 1.0f / sum);
}

// PIPELINE. A core reads or streams out at most ~14 GB/s here, and a copy reaches 28 only by doing
// both at once; the passes above write y only in their last pass, so a core's writes wait while it
// takes the max and the sum (about 71% of the copy by that count). Here one loop writes y of row m
// while it reads row m + 1, block by block: the exps of row m + 1 are taken against each block's own
// max and kept as f16 in one scratch row (half the bytes of x, so it stays in L2 beside the rows
// streaming through), each block's max one block ahead of its exps and the block after that
// prefetched; at the end of the row the block maxima and sums give every block's factor
// exp(block max - row max) / row sum, by which row m + 1's y is scaled as the next row streams in.
// It is off by default: on the 2-vCPU EPYC VM it was ahead of the passes above when the memory
// was the busier (10 of 11 paired runs, 1.05-1.26x) and behind when a neighbour took the cores
// (the conversions and per-block reductions cost more arithmetic than the second exp saves).
#if W > 1 && defined(__F16C__)
#define PIPELINE_PATH PIPELINE
constexpr long kBlock = 256;  // floats: 16 AVX-512 vectors, 1 KiB
#if W == 16
typedef __m256i vh;
static inline vh vhalf(vf v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vunhalf(const vh* p) { return _mm512_cvtph_ps(_mm256_load_si256(p)); }
static inline void vstore_half(vh* p, vf v) { _mm256_store_si256(p, vhalf(v)); }
#else
typedef __m128i vh;
static inline vf vunhalf(const vh* p) { return _mm256_cvtph_ps(_mm_load_si128(p)); }
static inline void vstore_half(vh* p, vf v) { _mm_store_si128(p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }
#endif

// The exps of x[0, n) against a reference given as ref_log2 = reference * log2(e), into e (f16),
// and their sum.
static float exp_sum_half(const float* x, vh* e, long n, float ref_log2) {
  vf acc[UNROLL];
  for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(0.0f);
  const vf m = vset1(ref_log2);
  long i = 0;
  for (; i + UNROLL * W <= n; i += UNROLL * W)
    for (int u = 0; u < UNROLL; ++u) {
      const vf v = vexp_below(vload(x + i + u * W), m);
      vstore_half(e + (i + u * W) / W, v);
      acc[u] = vadd(acc[u], v);
    }
  for (; i < n; i += W) {
    const vf v = vexp_below(vload(x + i), m);
    vstore_half(e + i / W, v);
    acc[0] = vadd(acc[0], v);
  }
  for (int u = 1; u < UNROLL; ++u) acc[0] = vadd(acc[0], acc[u]);
  return vsum(acc[0]);
}

// Rows [m0, m1) of a thread; N a whole number of vectors, y aligned for the streamed stores.
static void pipelined(const float* x, float* y, int m0, int m1, long N) {
  const long blocks = (N + kBlock - 1) / kBlock;
  auto length = [&](long b) { return b + 1 < blocks ? kBlock : N - b * kBlock; };
  vh* e = static_cast<vh*>(std::aligned_alloc(64, (N * 2 + 63) / 64 * 64));
  // Per block of the row being read: its max, then that max times log2(e) (rounded once, the
  // reference its exps were taken against); the sum of its exps; the factor its exps are scaled by.
  float* block_max = static_cast<float*>(std::malloc(sizeof(float) * 3 * blocks));
  float *block_sum = block_max + blocks, *factor = block_sum + blocks;
  for (int m = m0 - 1; m < m1; ++m) {
    const bool in = m + 1 < m1, out = m >= m0;  // reading row m + 1, writing row m
    const float* xn = x + (long)(m + 1) * N;
    if (in) block_max[0] = row_max(xn, 0, length(0));
    for (long b = 0; b < blocks; ++b) {
      const long n0 = b * kBlock, n = length(b);
      if (out) {  // e of row m, block b, before row m + 1's exps overwrite it
        const vf f = vset1(factor[b]);
        float* ym = y + (long)m * N + n0;
        for (long i = 0; i < n; i += W) vstream(ym + i, vmul(vunhalf(e + (n0 + i) / W), f));
      }
      if (in) {
        if (b + 1 < blocks) block_max[b + 1] = row_max(xn, n0 + kBlock, n0 + kBlock + length(b + 1));
        if (b + 2 < blocks)
          for (long i = 0; i < length(b + 2); i += 64 / sizeof(float))
            _mm_prefetch((const char*)(xn + n0 + 2 * kBlock + i), _MM_HINT_NTA);
        // (a block of -inf alone: its exps against 0, not -inf - -inf, and its factor 0)
        block_max[b] *= 1.44269504f;
        block_sum[b] = exp_sum_half(xn + n0, e + n0 / W, n, block_max[b] == -INFINITY ? 0.0f : block_max[b]);
      }
    }
    if (in) {  // the blocks' references against the row's, in the same rounded log2 units
      float row_max_log2 = block_max[0];
      for (long b = 1; b < blocks; ++b) row_max_log2 = block_max[b] > row_max_log2 ? block_max[b] : row_max_log2;
      float sum = 0;
      for (long b = 0; b < blocks; ++b) sum += block_sum[b] * (factor[b] = std::exp2(block_max[b] - row_max_log2));
      const float inverse = 1.0f / sum;
      for (long b = 0; b < blocks; ++b) factor[b] *= inverse;
    }
  }
  std::free(block_max);
  std::free(e);
}
#else
#define PIPELINE_PATH 0
static void pipelined(const float*, float*, int, int, long) {}
#endif

template <bool NT>
static void rows(const float* x, float* y, int M, long N) {
  const bool pipeline = NT && PIPELINE_PATH && N % W == 0 && (std::uintptr_t)y % (W * sizeof(float)) == 0;
  if ((long)M * N < PAR_THRESHOLD) {
    if (pipeline) return pipelined(x, y, 0, M, N);
    float* scratch = NT && !RECOMPUTE ? static_cast<float*>(std::malloc(sizeof(float) * N)) : nullptr;
    for (int m = 0; m < M; ++m) softmax_row<NT>(x + m * N, y + m * N, scratch, N);
    std::free(scratch);
    return;
  }
#pragma omp parallel
  {
    float* scratch = NT && !RECOMPUTE && !pipeline ? static_cast<float*>(std::malloc(sizeof(float) * N)) : nullptr;
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int m0 = (int)((long)M * t / nt), m1 = (int)((long)M * (t + 1) / nt);
    if (pipeline) {
      pipelined(x, y, m0, m1, N);
    } else if (PREFETCH_NEXT) {
      for (int m = m0; m < m1; ++m)
        softmax_row<NT>(x + m * N, y + m * N, scratch, N, m + 1 < m1 ? x + (m + 1) * N : nullptr);
    } else {
      // Dynamic chunks, so a thread that starts late (a busy core) takes fewer rows instead of
      // holding up the rest.
#pragma omp for schedule(dynamic, CHUNK_ROWS) nowait
      for (int m = 0; m < M; ++m) softmax_row<NT>(x + m * N, y + m * N, scratch, N);
    }
    if (NT) vfence();  // this thread's streamed stores are visible before the join
    std::free(scratch);
  }
}

// Fewer rows than threads (the vocabulary's M = 1): every row is split across the threads, which
// combine their maxima and sums between the passes. y is written in place (plain stores).
static void split_rows(const float* x, float* y, int M, long N) {
  const int threads = omp_get_max_threads();
  float* partial = static_cast<float*>(std::malloc(sizeof(float) * threads));
  float shared_value = 0;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Whole vectors per thread, so every part but the first starts aligned.
    const long per = (N + (long)nt * W - 1) / ((long)nt * W) * W;
    const long n0 = t * per < N ? t * per : N, n1 = n0 + per < N ? n0 + per : N;
    for (int m = 0; m < M; ++m) {
      const float* row = x + m * N;
      float* out = y + m * N;
      partial[t] = n0 < n1 ? row_max(row, n0, n1) : -INFINITY;
#pragma omp barrier
#pragma omp single
      {
        float best = partial[0];
        for (int i = 1; i < nt; ++i) best = partial[i] > best ? partial[i] : best;
        shared_value = best;
      }  // implicit barrier
      const float max_value = shared_value;
#pragma omp barrier
      partial[t] = n0 < n1 ? exp_sum(row, out, n0, n1, max_value) : 0.0f;
#pragma omp barrier
#pragma omp single
      {
        float sum = 0;
        for (int i = 0; i < nt; ++i) sum += partial[i];
        shared_value = 1.0f / sum;
      }
      const float inverse = shared_value;
      scale<false, false>(out, out, n0, n1, 0.0f, inverse);
#pragma omp barrier
    }
  }
  std::free(partial);
}

extern "C" void softmax_f32(const float* x, float* y, int M, int N) {
  const long total = (long)M * N;
  if (total >= PAR_THRESHOLD && M < omp_get_max_threads())
    split_rows(x, y, M, N);
  else if (total * (long)sizeof(float) >= (long)NT_MIN_BYTES) {
    rows<true>(x, y, M, N);
    vfence();
  } else
    rows<false>(x, y, M, N);
}
