// @kforge entry: rope_f32
// @kforge about: cos/sin once per token, vectorised (angles and their reduction in double, polynomials in f32: no libm calls), shared by its H+KVH heads; explicit AVX-512/AVX2 (VEC) rotation in place; tokens in dynamic chunks across OpenMP threads above PAR_THRESHOLD elements
// @kforge param: VEC=16 in {8,16}
// @kforge param: PAR_THRESHOLD=1048576 in {65536,262144,1048576,4194304,2147483647}
// @kforge param: CHUNK_TOKENS=16 in {1,4,16,64}
// (PAR_THRESHOLD=2147483647 never starts threads: the choice for a machine whose other cores are busy.)
#include <cmath>
#include <cstdlib>
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

// cos and sin of p * inv_freq[i] for i < half. The angle (up to ~4096 rad) is formed and reduced
// by the nearest multiple of pi/2 in double, so only the f32 polynomials on [-pi/4, pi/4] (cephes'
// sinf/cosf coefficients, ~1e-7) add error; branch-free quadrant fix-up, so `omp simd` vectorises it.
static void token_table(double p, const double* __restrict inv_freq, float* __restrict c, float* __restrict s,
                        int half) {
#pragma omp simd
  for (int i = 0; i < half; ++i) {
    const double angle = p * inv_freq[i];
    const double j = std::nearbyint(angle * 0.63661977236758134);  // 2/pi
    const float r = (float)(angle - j * 1.5707963267948966 - j * 6.123233995736766e-17);
    const int quadrant = (int)j;
    const float r2 = r * r;
    const float sin_r = r + r * r2 * ((-1.9515295891e-4f * r2 + 8.3321608736e-3f) * r2 - 1.6666654611e-1f);
    const float cos_r =
        1.0f - 0.5f * r2 + r2 * r2 * ((2.443315711809948e-5f * r2 - 1.388731625493765e-3f) * r2 + 4.166664568298827e-2f);
    const float sin_q = (quadrant & 1) ? cos_r : sin_r, cos_q = (quadrant & 1) ? sin_r : cos_r;
    s[i] = (quadrant & 2) ? -sin_q : sin_q;
    c[i] = ((quadrant + 1) & 2) ? -cos_q : cos_q;
  }
}

// (x[i], x[i + half]) rotated by the angle whose cos and sin are c[i], s[i].
static inline void rotate(float* __restrict x, const float* __restrict c, const float* __restrict s, int half) {
  float* __restrict x1p = x + half;
  int i = 0;
  for (; i + W <= half; i += W) {
    const vf x0 = vload(x + i), x1 = vload(x1p + i), cv = vload(c + i), sv = vload(s + i);
    vstore(x + i, vsub(vmul(x0, cv), vmul(x1, sv)));
    vstore(x1p + i, vfma(x0, sv, vmul(x1, cv)));
  }
  for (; i < half; ++i) {
    const float x0 = x[i], x1 = x1p[i];
    x[i] = x0 * c[i] - x1 * s[i];
    x1p[i] = x0 * s[i] + x1 * c[i];
  }
}

static void tokens(float* q, float* k, const int* pos, int H, int KVH, int D, const double* inv_freq, float* c,
                   float* s, int m0, int m1) {
  const int half = D / 2;
  for (int m = m0; m < m1; ++m) {
    token_table((double)pos[m], inv_freq, c, s, half);
    for (int h = 0; h < H; ++h) rotate(q + ((long)m * H + h) * D, c, s, half);
    for (int g = 0; g < KVH; ++g) rotate(k + ((long)m * KVH + g) * D, c, s, half);
  }
}

extern "C" void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  const int half = D / 2;
  // inv_freq[i] = theta^(-2i/D) = ratio^i, in double: one pow, then products (error ~i ulps of a
  // double, far below f32's).
  // Stack buffers for the usual head sizes: a malloc per call costs as much as a decode step's work.
  constexpr int kStackHalf = 256;
  double inv_stack[kStackHalf];
  float table_stack[2 * kStackHalf];
  double* inv_freq = half <= kStackHalf ? inv_stack : static_cast<double*>(std::malloc(sizeof(double) * half));
  const double ratio = std::pow((double)theta, -2.0 / D);
  double f = 1.0;
  for (int i = 0; i < half; ++i, f *= ratio) inv_freq[i] = f;
  if ((long)M * (H + KVH) * D < PAR_THRESHOLD) {
    float* table = half <= kStackHalf ? table_stack : static_cast<float*>(std::malloc(sizeof(float) * 2 * half));
    tokens(q, k, pos, H, KVH, D, inv_freq, table, table + half, 0, M);
    if (table != table_stack) std::free(table);
  } else {
    // Dynamic chunks of tokens, so a thread that starts late (a busy core) takes fewer tokens
    // instead of holding up the rest.
#pragma omp parallel
    {
      float* table = static_cast<float*>(std::malloc(sizeof(float) * 2 * half));
#pragma omp for schedule(dynamic, 1) nowait
      for (int m0 = 0; m0 < M; m0 += CHUNK_TOKENS)
        tokens(q, k, pos, H, KVH, D, inv_freq, table, table + half, m0, m0 + CHUNK_TOKENS < M ? m0 + CHUNK_TOKENS : M);
      std::free(table);
    }
  }
  if (inv_freq != inv_stack) std::free(inv_freq);
}
