// @kforge entry: gemv_q8_0_q8
// @kforge about: x quantized once per call (SIMD, bit-exact roundf); per block an int8 x int8 dot in int32 (VNNI dpbusd, else AVX2 maddubs + madd; |qx| precomputed, its sign moved onto w), times d_w * d_x into f32 lanes; ROWS rows share each block of x, each row with 4 / ROWS independent accumulators; VEC=16 packs two blocks per zmm; rows across OpenMP threads, with SPREAD each thread's range cut into ROWS parts read side by side (ROWS long sequential streams, not ROWS adjacent rows)
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=8 in {1,2,4,8}
// @kforge param: PF=8 in {0,8,16,32}
// @kforge param: SPREAD=1 in {0,1}
// @kforge param: PAR_THRESHOLD=65536 in {65536,262144,1048576,1073741824}
#include <immintrin.h>
#include <omp.h>

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

// x as Q8_0, laid out for the dot: |q| (the unsigned operand of dpbusd / maddubs), q (whose
// sign is moved onto the weights) and d_x as f32. Reused across calls on a thread.
struct QuantizedX {
  std::vector<uint8_t> abs_q;
  std::vector<int8_t> q;
  std::vector<float> d;
};

// quantize_row_q8_0_ref to the letter: d = amax / 127 and id = 1 / d as f32 divisions,
// q = roundf(x * id), half away from zero (the SIMD path rounds toward zero, then adds the sign
// where the dropped fraction is >= 0.5; x * id - trunc(x * id) is exact, so this is roundf).
static void quantize_x(const float* x, int K, QuantizedX& out) {
  const int blocks = K / 32;
  out.abs_q.resize(K);
  out.q.resize(K);
  out.d.resize(blocks);
  for (int b = 0; b < blocks; ++b) {
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
// sum_i qw_i * qx_i of one block in eight int32 lanes: |qx| * (qw with qx's sign). qw = -128
// never occurs (ggml's quantizer gives |q| <= 127), so the sign flip cannot overflow.
static inline __m256i block_dot(__m256i abs_qx, __m256i qx, __m256i qw) {
  const __m256i signed_w = _mm256_sign_epi8(qw, qx);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), abs_qx, signed_w);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), abs_qx, signed_w);
#else
  // pairs of u8 * s8 into s16 (at most 2 * 127 * 127, no saturation), then pairs into s32
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_qx, signed_w), _mm256_set1_epi16(1));
#endif
}

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

#if VEC == 16 && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__F16C__)
#define TWO_BLOCKS_PER_ZMM 1
#endif

// R rows n0, n0 + stride, ..., n0 + (R - 1) * stride of y. Each row keeps C independent accumulators
// (blocks taken in turn), so that with few rows the FMA latency does not serialize the blocks.
template <int R>
static inline void rows_dot(const block_q8_0* W, const QuantizedX& xq, int n0, int blocks, float* y, int stride = 1) {
  constexpr int C = R >= 4 ? 1 : 4 / R;
  const block_q8_0* row[R];
  for (int r = 0; r < R; ++r) row[r] = W + (long)(n0 + r * stride) * blocks;
  const uint8_t* abs_q = xq.abs_q.data();
  const int8_t* q = xq.q.data();
  const float* dx = xq.d.data();
  int b = 0;
#if defined(TWO_BLOCKS_PER_ZMM)
  // Blocks b and b + 1 in the two halves of a zmm: one mask-negate, one dpbusd, one convert and
  // one FMA for both; the scales [s_b x 8, s_b+1 x 8] from the two f16 d_w in one conversion.
  __m512 acc16[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc16[r][c] = _mm512_setzero_ps();
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (; b + 2 * C <= blocks; b += 2 * C) {
    for (int c = 0; c < C; ++c) {
      const int bb = b + 2 * c;
      const __m512i ax = _mm512_loadu_si512(abs_q + 32 * bb);
      const __mmask64 negative = _mm512_movepi8_mask(_mm512_loadu_si512(q + 32 * bb));
      const __m128 dx2 = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(dx + bb)));
      for (int r = 0; r < R; ++r) {
        if (PF) _mm_prefetch(reinterpret_cast<const char*>(row[r] + bb + PF), _MM_HINT_T0);
        const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r][bb].qs))),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r][bb + 1].qs)), 1);
        const __m512i signed_w = _mm512_mask_sub_epi8(qw, negative, _mm512_setzero_si512(), qw);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, signed_w);
        const __m128 dw2 = _mm_cvtph_ps(_mm_cvtsi32_si128(row[r][bb].d | (uint32_t(row[r][bb + 1].d) << 16)));
        const __m512 scale = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_mul_ps(dw2, dx2)));
        acc16[r][c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc16[r][c]);
      }
    }
  }
#endif
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  auto step = [&](int bb, int c) {
    const __m256i ax = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(abs_q + 32 * bb));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * bb));
    for (int r = 0; r < R; ++r) {
      if (PF) _mm_prefetch(reinterpret_cast<const char*>(row[r] + bb + PF), _MM_HINT_T0);
      const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r][bb].qs));
      const __m256 scale = _mm256_set1_ps(half_to_float(row[r][bb].d) * dx[bb]);
      acc[r][c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(block_dot(ax, qx, qw)), acc[r][c]);
    }
  };
  for (; b + C <= blocks; b += C)
    for (int c = 0; c < C; ++c) step(b + c, c);
  for (; b < blocks; ++b) step(b, 0);
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][c]);
#if defined(TWO_BLOCKS_PER_ZMM)
    for (int c = 1; c < C; ++c) acc16[r][0] = _mm512_add_ps(acc16[r][0], acc16[r][c]);
    acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_add_ps(_mm512_castps512_ps256(acc16[r][0]), _mm512_extractf32x8_ps(acc16[r][0], 1)));
#endif
    y[n0 + r * stride] = hsum8(acc[r][0]);
  }
#else
  for (int r = 0; r < R; ++r) {
    float sum = 0.0f;
    for (b = 0; b < blocks; ++b) {
      int dot = 0;
      for (int j = 0; j < 32; ++j) dot += row[r][b].qs[j] * q[32 * b + j];
      sum += half_to_float(row[r][b].d) * dx[b] * float(dot);
    }
    y[n0 + r * stride] = sum;
  }
#endif
}

extern "C" void gemv_q8_0_q8(const void* W, const float* x, float* y, int N, int K) {
  static thread_local QuantizedX mine;
  quantize_x(x, K, mine);  // K values: a few hundred ns, against N * K / 32 blocks of W
  const QuantizedX& xq = mine;  // the caller's copy: inside the parallel region 'mine' is each thread's own
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const int per_row = K / 32;
#if SPREAD
  // Each thread's rows [n0, n1) cut in ROWS equal parts, row j of every part done together: each
  // part is one sequential stream for the whole call, so the prefetchers ramp up once per call.
#pragma omp parallel if ((long)N * K >= PAR_THRESHOLD)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int n0 = (int)((long)N * t / nt), n1 = (int)((long)N * (t + 1) / nt), part = (n1 - n0) / ROWS;
    for (int j = 0; j < part; ++j) rows_dot<ROWS>(blocks, xq, n0 + j, per_row, y, part);
    for (int n = n0 + part * ROWS; n < n1; ++n) rows_dot<1>(blocks, xq, n, per_row, y);
  }
#else
  const int full = N / ROWS * ROWS;
#pragma omp parallel for schedule(static) if ((long)N * K >= PAR_THRESHOLD)
  for (int n0 = 0; n0 < full; n0 += ROWS) rows_dot<ROWS>(blocks, xq, n0, per_row, y);
  for (int n = full; n < N; ++n) rows_dot<1>(blocks, xq, n, per_row, y);
#endif
}
