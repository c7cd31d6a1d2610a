// @kforge entry: softmax_f32
// @kforge about: one read of x: each row in BLOCK-float blocks that stay in L1, a block's max then its exps (AVX-512/AVX2 polynomial, VEC) against that max, combined online into the row's max and sum; a last pass rescales each block by exp(block max - row max) / sum. Exps go to a per-thread scratch row in cache and y is streamed when y is NT_MIN_BYTES or more; rows in dynamic chunks over OpenMP threads above PAR_THRESHOLD, a row split across threads when there are fewer rows than threads
// @kforge param: VEC=16 in {8,16}
// @kforge param: UNROLL=2 in {1,2,4}
// @kforge param: BLOCK=1024 in {256,1024,4096}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304,2147483647}
// @kforge param: CHUNK_ROWS=1 in {1,4,16}
// @kforge param: NT_MIN_BYTES=33554432 in {0,4194304,33554432,134217728,1099511627776}
// Why: the three-pass softmax (max, exps, scale) reads x from memory in a pass that does no
// arithmetic, then computes the exps in a pass that reads nothing new, so neither overlaps the
// other. Here the memory read and the exps share one pass (a block read for its max is still in
// L1 when its exps are taken), at the cost of one scalar exp per block.
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
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline float vhmax(vf v) { return _mm512_reduce_max_ps(v); }
#elif W == 8
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline float vhmax(vf v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
#else
static inline vf vsub(vf a, vf b) { return a - b; }
static inline vf vdiv(vf a, vf b) { return a / b; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline float vhmax(vf v) { return v; }
#endif

// exp(x) on a vector, x clamped to [-87, 88] (2^k stays a normal float): k = round(x log2 e),
// r = x - k ln2 in [-ln2/2, ln2/2] (ln2 in two parts), a degree-6 Taylor polynomial (~2e-7
// relative), then 2^k into the exponent field.
#if W == 16
static inline vf vexp(vf x) {
  x = _mm512_min_ps(_mm512_max_ps(x, vset1(-87.0f)), vset1(88.0f));
  const vf k = _mm512_roundscale_ps(vmul(x, vset1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf r = _mm512_fnmadd_ps(k, vset1(1.42860677e-6f), _mm512_fnmadd_ps(k, vset1(0.693145752f), x));
#elif W == 8
static inline vf vexp(vf x) {
  x = _mm256_min_ps(_mm256_max_ps(x, vset1(-87.0f)), vset1(88.0f));
  const vf k = _mm256_round_ps(vmul(x, vset1(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf r = _mm256_fnmadd_ps(k, vset1(1.42860677e-6f), _mm256_fnmadd_ps(k, vset1(0.693145752f), x));
#endif
#if W > 1
  vf p = vset1(1.0f / 720);
  p = vfma(p, r, vset1(1.0f / 120));
  p = vfma(p, r, vset1(1.0f / 24));
  p = vfma(p, r, vset1(1.0f / 6));
  p = vfma(p, r, vset1(0.5f));
  p = vfma(p, r, vset1(1.0f));
  p = vfma(p, r, vset1(1.0f));
#endif
#if W == 16
  return _mm512_scalef_ps(p, k);
}
#elif W == 8
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return vmul(p, _mm256_castsi256_ps(bits));
}
#else
static inline vf vexp(vf x) { return std::exp(x); }
#endif


// The max of x[n0, n1).
static float block_max(const float* __restrict x, long n0, long n1) {
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

// e[n] = exp(x[n] - max_value) for n in [n0, n1), returning their sum.
static float exp_sum(const float* __restrict x, float* __restrict e, long n0, long n1, float max_value) {
  vf acc[UNROLL];
  for (int u = 0; u < UNROLL; ++u) acc[u] = vset1(0.0f);
  const vf m = vset1(max_value);
  long n = n0;
  for (; n + UNROLL * W <= n1; n += UNROLL * W)
    for (int u = 0; u < UNROLL; ++u) {
      const vf v = vexp(vsub(vload(x + n + u * W), m));
      vstore(e + n + u * W, v);
      acc[u] = vadd(acc[u], v);
    }
  for (int u = 1; u < UNROLL; ++u) acc[0] = vadd(acc[0], acc[u]);
  float sum = vsum(acc[0]);
  for (; n < n1; ++n) {
    e[n] = std::exp(x[n] - max_value);
    sum += e[n];
  }
  return sum;
}

// A running (max, sum of exp(x - max)) over some blocks.
struct MaxSum {
  float max = -INFINITY, sum = 0.0f;
  void add(float m, float s) {
    if (m > max) {
      sum = sum * std::exp(max - m) + s;  // exp(-inf) = 0 for the first block
      max = m;
    } else {
      sum += s * std::exp(m - max);
    }
  }
};

// The one read of x[n0, n1): block by block, e = exp(x - the block's max) and the block's max
// kept in bmax[] (one per block, blocks counted from n0).
static MaxSum exp_pass(const float* __restrict x, float* __restrict e, float* bmax, long n0, long n1) {
  MaxSum total;
  for (long b = 0, n = n0; n < n1; ++b, n += BLOCK) {
    const long end = n + BLOCK < n1 ? n + BLOCK : n1;
    bmax[b] = block_max(x, n, end);
    total.add(bmax[b], exp_sum(x, e, n, end, bmax[b]));
  }
  return total;
}

// y[n] = e[n] * exp(bmax[block] - max_value) * inverse for n in [n0, n1); e may be y (in place).
// With NT the body goes out in non-temporal stores (aligned: a scalar head first).
template <bool NT>
static void scale_pass(const float* e, float* y, const float* bmax, long n0, long n1, float max_value, float inverse) {
  for (long b = 0, n = n0; n < n1; ++b) {
    const long end = n + BLOCK < n1 ? n + BLOCK : n1;
    const float f = std::exp(bmax[b] - max_value) * inverse;
    if (NT) {
      long head = n + (long)((-(std::uintptr_t)(y + n) / sizeof(float)) & (W - 1));
      head = head < end ? head : end;
      for (; n < head; ++n) y[n] = e[n] * f;
    }
    const vf s = vset1(f);
    for (; n + W <= end; n += W) {
      const vf v = vmul(vload(e + n), s);
      if (NT) vstream(y + n, v); else vstore(y + n, v);
    }
    for (; n < end; ++n) y[n] = e[n] * f;
  }
}

// Per-thread scratch: the exps of one row (with NT) and the block maxima.
struct Scratch {
  float* e;
  float* bmax;
  Scratch(long N, bool row) {
    e = row ? static_cast<float*>(std::malloc(sizeof(float) * N)) : nullptr;
    bmax = static_cast<float*>(std::malloc(sizeof(float) * (N / BLOCK + 1)));
  }
  ~Scratch() { std::free(e); std::free(bmax); }
};

template <bool NT>
static void softmax_row(const float* x, float* y, Scratch& s, long N) {
  float* e = NT ? s.e : y;
  const MaxSum row = exp_pass(x, e, s.bmax, 0, N);
  scale_pass<NT>(e, y, s.bmax, 0, N, row.max, 1.0f / row.sum);
}

template <bool NT>
static void rows(const float* x, float* y, int M, long N) {
  if ((long)M * N < PAR_THRESHOLD) {
    Scratch s(N, NT);
    for (int m = 0; m < M; ++m) softmax_row<NT>(x + m * N, y + m * N, s, N);
    return;
  }
  // Dynamic chunks, so a thread that starts late (a busy core) takes fewer rows instead of
  // holding up the rest.
#pragma omp parallel
  {
    Scratch s(N, NT);
#pragma omp for schedule(dynamic, CHUNK_ROWS) nowait
    for (int m = 0; m < M; ++m) softmax_row<NT>(x + m * N, y + m * N, s, N);
    if (NT) vfence();  // this thread's streamed stores are visible before the join
  }
}

// Fewer rows than threads (the vocabulary's M = 1): every row is split across the threads, each
// of which makes one exp pass over its part; they combine their (max, sum) and rescale in place.
static void split_rows(const float* x, float* y, int M, long N) {
  const int threads = omp_get_max_threads();
  MaxSum* partial = static_cast<MaxSum*>(std::malloc(sizeof(MaxSum) * threads));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Whole blocks per thread, so the parts start on block (and vector) boundaries.
    const long per = (N + (long)nt * BLOCK - 1) / ((long)nt * BLOCK) * BLOCK;
    const long n0 = t * per < N ? t * per : N, n1 = n0 + per < N ? n0 + per : N;
    Scratch s(per, false);
    for (int m = 0; m < M; ++m) {
      partial[t] = n0 < n1 ? exp_pass(x + m * N, y + m * N, s.bmax, n0, n1) : MaxSum{};
#pragma omp barrier
      MaxSum row;
      for (int i = 0; i < nt; ++i)
        if (partial[i].sum > 0) row.add(partial[i].max, partial[i].sum);
      if (n0 < n1) scale_pass<false>(y + m * N, y + m * N, s.bmax, n0, n1, row.max, 1.0f / row.sum);
#pragma omp barrier  // partial[] is reused by the next row
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
