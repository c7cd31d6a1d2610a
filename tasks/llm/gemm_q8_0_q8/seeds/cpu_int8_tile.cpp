// @kforge entry: gemm_q8_0_q8
// @kforge about: A quantized once per call (SIMD, bit-exact roundf); MR x NR register tiles of integer block dots over panels of NB rows of W kept in cache: VNNI dpbusd on (qa + 128) x qw with -128 * sum(qw) as the start value (one instruction per pair of rows), else the AVX2 sign trick with maddubs; d_w * d_a applied per block in f32; panels across OpenMP threads
// @kforge param: MR=4 in {1,2,4}
// @kforge param: NR=4 in {1,2,4}
// @kforge param: NB=64 in {16,64,256}
// @kforge param: PAR_THRESHOLD=262144 in {262144,1048576,16777216,1073741824}
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

struct block_q8_0 {
  uint16_t d;
  int8_t qs[32];
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

// f32 rounded to f16 (to nearest, ties to even) and back: the d_x every block dot uses.
static inline float round_to_half(float f) {
#ifdef __F16C__
  return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7FFFFFFF;
  uint16_t h;
  if (a > 0x7F800000) h = sign | 0x7E00;
  else if (a >= 0x477FF000) h = sign | 0x7C00;
  else if (a < 0x38800000) h = sign | uint16_t(std::nearbyint(std::fabs(f) * 0x1p24f));
  else h = sign | uint16_t((a + 0xFFF + ((a >> 13) & 1) - 0x38000000) >> 13);
  return half_to_float(h);
#endif
}

// A as Q8_0 (its M rows are M * K / 32 consecutive blocks): |q| and q (the operands of the AVX2
// sign trick; VNNI flips q's sign bit into q + 128 instead) and d_a as f32. Reused across calls.
struct QuantizedX {
  std::vector<uint8_t> abs_q;
  std::vector<int8_t> q;
  std::vector<float> d;
};

// quantize_row_q8_0_ref to the letter: d = amax / 127 and id = 1 / d as f32 divisions,
// q = roundf(x * id), half away from zero (the SIMD path rounds toward zero, then adds the sign
// where the dropped fraction is >= 0.5; x * id - trunc(x * id) is exact, so this is roundf).
static void quantize_x(const float* x, long K, QuantizedX& out) {
  const long blocks = K / 32;
  out.abs_q.resize(K);
  out.q.resize(K);
  out.d.resize(blocks);
  for (long b = 0; b < blocks; ++b) {
    const float* xb = x + 32 * b;
#if defined(__AVX2__)
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign_bit, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256i q32[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 s = _mm256_mul_ps(v[i], vid);
      const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign_bit, _mm256_sub_ps(s, t)), half, _CMP_GE_OQ);
      const __m256 step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign_bit, s)));
      q32[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
    }
    // packs work within 128-bit lanes: the permute puts the 32 bytes back in order
    const __m256i q16a = _mm256_packs_epi32(q32[0], q32[1]), q16b = _mm256_packs_epi32(q32[2], q32[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q.data() + 32 * b), q8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.abs_q.data() + 32 * b), _mm256_abs_epi8(q8));
#else
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) {
      const int q = int(std::roundf(xb[j] * id));
      out.q[32 * b + j] = int8_t(q);
      out.abs_q[32 * b + j] = uint8_t(q < 0 ? -q : q);
    }
#endif
    out.d[b] = round_to_half(d);
  }
}

#if defined(__AVX2__) && defined(__FMA__)
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#elif defined(__AVXVNNI__)
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#endif
#endif

// C[m0 .. m0 + TM - 1, n0 .. n0 + TN - 1]: TM rows of A against TN rows of W, all K / 32 blocks.
template <int TM, int TN>
static inline void tile(const block_q8_0* W, const QuantizedX& aq, int m0, int n0, int blocks, float* C, int N) {
  const block_q8_0* w[TN];
  for (int j = 0; j < TN; ++j) w[j] = W + (long)(n0 + j) * blocks;
  const long a0 = (long)m0 * blocks;  // first block of A's row m0
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int b = 0; b < blocks; ++b) {
    __m256i qw[TN];
    __m256 dw[TN];
    for (int j = 0; j < TN; ++j) {
      qw[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j][b].qs));
      dw[j] = _mm256_set1_ps(half_to_float(w[j][b].d));
    }
#if defined(DPBUSD)
    // (qa + 128) * qw = qa * qw + 128 * qw: starting each dot at -128 * sum(qw), computed once
    // per block of W, makes one dpbusd per pair the whole integer dot.
    __m256i start[TN];
    for (int j = 0; j < TN; ++j)
      start[j] = _mm256_sub_epi32(_mm256_setzero_si256(), DPBUSD(_mm256_setzero_si256(), _mm256_set1_epi8(char(0x80)), qw[j]));
#endif
    for (int i = 0; i < TM; ++i) {
      const long ab = a0 + (long)i * blocks + b;
      const __m256 da = _mm256_broadcast_ss(&aq.d[ab]);
      const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq.q.data() + 32 * ab));
#if defined(DPBUSD)
      const __m256i ua = _mm256_xor_si256(qa, _mm256_set1_epi8(char(0x80)));  // q + 128 as u8
#else
      const __m256i ax = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq.abs_q.data() + 32 * ab));
#endif
      for (int j = 0; j < TN; ++j) {
#if defined(DPBUSD)
        const __m256i dot = DPBUSD(start[j], ua, qw[j]);
#else
        // |qa| * (qw with qa's sign): u8 x s8 pairs at most 2 * 127 * 127, no saturation
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qw[j], qa)), _mm256_set1_epi16(1));
#endif
        acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(da, dw[j]), _mm256_cvtepi32_ps(dot), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) C[(long)(m0 + i) * N + n0 + j] = hsum8(acc[i][j]);
#else
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) {
      float sum = 0.0f;
      for (int b = 0; b < blocks; ++b) {
        const long ab = a0 + (long)i * blocks + b;
        int dot = 0;
        for (int k = 0; k < 32; ++k) dot += w[j][b].qs[k] * aq.q[32 * ab + k];
        sum += half_to_float(w[j][b].d) * aq.d[ab] * float(dot);
      }
      C[(long)(m0 + i) * N + n0 + j] = sum;
    }
#endif
}

// Rows n0 .. n1 - 1 of W against all M rows of A, in MR x NR tiles (smaller ones at the edges).
template <int TN>
static inline void columns(const block_q8_0* W, const QuantizedX& aq, int M, int n0, int blocks, float* C, int N) {
  int m = 0;
  for (; m + MR <= M; m += MR) tile<MR, TN>(W, aq, m, n0, blocks, C, N);
  for (; m < M; ++m) tile<1, TN>(W, aq, m, n0, blocks, C, N);
}

extern "C" void gemm_q8_0_q8(const float* A, const void* W, float* C, int M, int N, int K) {
  static thread_local QuantizedX mine;
  quantize_x(A, (long)M * K, mine);  // blocks never straddle rows: K % 32 == 0
  const QuantizedX& aq = mine;        // the caller's copy: inside the parallel region 'mine' is each thread's own
  const block_q8_0* w = static_cast<const block_q8_0*>(W);
  const int blocks = K / 32, panels = (N + NB - 1) / NB;
  // A panel of NB rows of W (NB * K * 34 / 32 bytes) stays in L2 while every tile of A passes it.
#pragma omp parallel for schedule(static) if ((long)M * N * K >= PAR_THRESHOLD)
  for (int p = 0; p < panels; ++p) {
    const int n1 = (p + 1) * NB < N ? (p + 1) * NB : N;
    int n = p * NB;
    for (; n + NR <= n1; n += NR) columns<NR>(w, aq, M, n, blocks, C, N);
    for (; n < n1; ++n) columns<1>(w, aq, M, n, blocks, C, N);
  }
}
