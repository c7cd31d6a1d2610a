// @kforge entry: kv_append_f32
// @kforge about: an inline vector copy of k and v together below PAR_THRESHOLD floats; above it the k and v rows in dynamic chunks across OpenMP threads, explicit AVX-512/AVX2 (VEC) copies, UNROLL vectors a step, non-temporal stores for rows of NT_MIN_BYTES or more
// @kforge param: VEC=16 in {8,16}
// @kforge param: UNROLL=4 in {1,2,4}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304,2147483647}
// @kforge param: CHUNK=65536 in {16384,65536,262144}
// @kforge param: NT_MIN_BYTES=8388608 in {0,2097152,8388608,33554432,1099511627776}
// (PAR_THRESHOLD=2147483647 never starts threads: the choice for a machine whose other cores are busy.)
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

// dst[i] = src[i] for i in [begin, end). With NT the body goes out in non-temporal stores
// (aligned: a scalar head first), so a row larger than the cache costs one write to memory and
// no read for ownership.
template <bool NT>
static void copy_range(const float* __restrict src, float* __restrict dst, long begin, long end) {
  long i = begin;
  if (NT) {
    long head = begin + (long)((-(std::uintptr_t)(dst + begin) / sizeof(float)) & (W - 1));
    head = head < end ? head : end;
    for (; i < head; ++i) dst[i] = src[i];
  }
  for (; i + UNROLL * W <= end; i += UNROLL * W)
    for (int u = 0; u < UNROLL; ++u) {
      if (NT) vstream(dst + i + u * W, vload(src + i + u * W)); else vstore(dst + i + u * W, vload(src + i + u * W));
    }
  for (; i < end; ++i) dst[i] = src[i];
}

template <bool NT>
static void copy_rows(const float* k, const float* v, float* k_row, float* v_row, long row) {
  // Work items: CHUNK floats of k, then of v; dynamic, so a thread that starts late (a busy core)
  // takes fewer of them instead of holding up the rest.
  const long chunks = (row + CHUNK - 1) / CHUNK;
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1) nowait
    for (long c = 0; c < 2 * chunks; ++c) {
      const long begin = (c % chunks) * CHUNK, end = begin + CHUNK < row ? begin + CHUNK : row;
      if (c < chunks) copy_range<NT>(k, k_row, begin, end); else copy_range<NT>(v, v_row, begin, end);
    }
    if (NT) vfence();  // this thread's streamed stores are visible before the join
  }
  if (NT) vfence();
}

extern "C" void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH, int D,
                              int pos) {
  // The token's row of each cache is contiguous: two copies of KVH*D floats.
  const long row = (long)KVH * D;
  float* k_row = k_cache + (long)pos * row;
  float* v_row = v_cache + (long)pos * row;
  if (2 * row < PAR_THRESHOLD) {
    // One decode step (8 KiB): threads would cost more than the copy, and an inline vector loop
    // less than memcpy's call and size dispatch.
    long i = 0;
    for (; i + W <= row; i += W) {  // k and v together: two streams of misses in flight, not one
      vstore(k_row + i, vload(k + i));
      vstore(v_row + i, vload(v + i));
    }
    for (; i < row; ++i) {
      k_row[i] = k[i];
      v_row[i] = v[i];
    }
  } else if (row * (long)sizeof(float) >= (long)NT_MIN_BYTES) {
    copy_rows<true>(k, v, k_row, v_row, row);
  } else {
    copy_rows<false>(k, v, k_row, v_row, row);
  }
}
