// @kforge entry: swiglu_f32
// @kforge about: explicit AVX-512/AVX2 (VEC) polynomial exp and division, UNROLL vectors a step; elements in dynamic chunks across OpenMP threads above PAR_THRESHOLD; non-temporal stores for a y of NT_MIN_BYTES or more
// @kforge param: VEC=16 in {8,16}
// @kforge param: UNROLL=2 in {1,2,4}
// @kforge param: PAR_THRESHOLD=1048576 in {65536,262144,1048576,4194304,2147483647}
// @kforge param: CHUNK=65536 in {16384,65536,262144}
// @kforge param: NT_MIN_BYTES=33554432 in {0,4194304,33554432,134217728,1099511627776}
// (PAR_THRESHOLD=2147483647 never starts threads: the choice for a machine whose other cores are busy.)
#include <cmath>
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

static inline float silu_mul(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

// y[i] = silu(gate[i]) * up[i] for i in [begin, end). With NT the body goes out in non-temporal
// stores (aligned: a scalar head first), so a y larger than the cache costs one write to memory
// and no read for ownership.
template <bool NT>
static void swiglu_range(const float* __restrict g, const float* __restrict u, float* __restrict y, long begin,
                         long end) {
  long i = begin;
  if (NT) {
    long head = begin + (long)((-(std::uintptr_t)(y + begin) / sizeof(float)) & (W - 1));
    head = head < end ? head : end;
    for (; i < head; ++i) y[i] = silu_mul(g[i], u[i]);
  }
  const vf one = vset1(1.0f), zero = vset1(0.0f);
  for (; i + UNROLL * W <= end; i += UNROLL * W)
    for (int k = 0; k < UNROLL; ++k) {
      const vf gv = vload(g + i + k * W);
      const vf v = vdiv(vmul(gv, vload(u + i + k * W)), vadd(one, vexp(vsub(zero, gv))));
      if (NT) vstream(y + i + k * W, v); else vstore(y + i + k * W, v);
    }
  for (; i + W <= end; i += W) {
    const vf gv = vload(g + i);
    const vf v = vdiv(vmul(gv, vload(u + i)), vadd(one, vexp(vsub(zero, gv))));
    if (NT) vstream(y + i, v); else vstore(y + i, v);
  }
  for (; i < end; ++i) y[i] = silu_mul(g[i], u[i]);
}

template <bool NT>
static void run(const float* gate, const float* up, float* y, long total) {
  // Threads cost microseconds to wake: a plain loop below the threshold. Above it, dynamic chunks
  // of CHUNK elements (whole vectors, so every chunk but the last starts aligned), so a thread
  // that starts late (a busy core) takes fewer chunks instead of holding up the rest.
  if (total < PAR_THRESHOLD) {
    swiglu_range<NT>(gate, up, y, 0, total);
  } else {
    const long chunks = (total + CHUNK - 1) / CHUNK;
#pragma omp parallel
    {
#pragma omp for schedule(dynamic, 1) nowait
      for (long c = 0; c < chunks; ++c)
        swiglu_range<NT>(gate, up, y, c * CHUNK, c * CHUNK + CHUNK < total ? c * CHUNK + CHUNK : total);
      if (NT) vfence();  // this thread's streamed stores are visible before the join
    }
  }
  if (NT) vfence();
}

extern "C" void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  const long total = (long)M * N;
  if (total * (long)sizeof(float) >= (long)NT_MIN_BYTES)
    run<true>(gate, up, y, total);
  else
    run<false>(gate, up, y, total);
}
