// @kforge entry: gemv_swiglu_f32
// @kforge about: ROWS rows of W1 and the same ROWS of W3 per step share each load of x (2*ROWS vector accumulators, masked K tail); row blocks across OpenMP threads; silu of each block's outputs with a polynomial exp; with SPREAD each thread cuts its rows into ROWS parts read side by side, long sequential streams
// @kforge param: VEC=16 in {8,16}
// @kforge param: ROWS=4 in {1,2,4,8}
// @kforge param: SPREAD=1 in {0,1}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <omp.h>

// VEC=16 takes AVX-512 where the compiler targets it; otherwise (or with VEC=8) AVX2 + FMA;
// otherwise a scalar `omp simd` loop, so the file is correct on any x86-64 and a search can pick
// the width per machine.
#if VEC == 16 && defined(__AVX512F__)
#define SIMD_WIDTH 16
#elif defined(__AVX2__) && defined(__FMA__)
#define SIMD_WIDTH 8
#else
#define SIMD_WIDTH 1
#endif

// exp(x) clamped to [-87, 87], enough for silu (beyond it g / (1 + exp(-g)) is 0 or g within f32):
// x = k ln2 + r with |r| <= ln2/2, exp(r) by its degree-6 Taylor polynomial (~1e-7 relative), 2^k
// written into the exponent field (k stays in [-126, 126], a normal float). Branch-free, so it
// vectorises; there are only N of them, but a libm call per row would still cost a few percent.
#pragma omp declare simd
static inline float exp_clamped(float x) {
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  // Round to nearest by adding and removing 1.5 * 2^23 (no -ffast-math, so it is not folded).
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;  // ln2 split in two (Cody-Waite)
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

#if SIMD_WIDTH == 8
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

// Outputs y[r * step] for r in [0, R) from the rows r * step of w1 and w3 (each row K floats). R is a
// template argument so the 2R accumulators live in registers (16 of 32 zmm at R = 4 with AVX-512; at
// R = 8 AVX2's 16 ymm spill).
template <int R>
static inline void rows_block(const float* __restrict w1, const float* __restrict w3, const float* __restrict x,
                              float* __restrict y, int K, long step = 1) {
  const long stride = step * K;
  float g[R], u[R];
#if SIMD_WIDTH == 16
  __m512 ag[R], au[R];
  for (int r = 0; r < R; ++r) ag[r] = au[r] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) {
      ag[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + r * stride + k), xv, ag[r]);
      au[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + r * stride + k), xv, au[r]);
    }
  }
  if (k < K) {  // the last K % 16: masked loads read nothing past the row and cannot fault
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    for (int r = 0; r < R; ++r) {
      ag[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w1 + r * stride + k), xv, ag[r]);
      au[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w3 + r * stride + k), xv, au[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    g[r] = _mm512_reduce_add_ps(ag[r]);
    u[r] = _mm512_reduce_add_ps(au[r]);
  }
#elif SIMD_WIDTH == 8
  __m256 ag[R], au[R];
  for (int r = 0; r < R; ++r) ag[r] = au[r] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) {
      ag[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + r * stride + k), xv, ag[r]);
      au[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + r * stride + k), xv, au[r]);
    }
  }
  if (k < K) {  // the last K % 8: lanes j < K - k on, masked-off lanes are not read
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(K - k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 xv = _mm256_maskload_ps(x + k, m);
    for (int r = 0; r < R; ++r) {
      ag[r] = _mm256_fmadd_ps(_mm256_maskload_ps(w1 + r * stride + k, m), xv, ag[r]);
      au[r] = _mm256_fmadd_ps(_mm256_maskload_ps(w3 + r * stride + k, m), xv, au[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    g[r] = hsum(ag[r]);
    u[r] = hsum(au[r]);
  }
#else
  for (int r = 0; r < R; ++r) g[r] = u[r] = 0.0f;
#pragma omp simd reduction(+ : g[:R], u[:R])
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < R; ++r) {
      g[r] += w1[r * stride + k] * x[k];
      u[r] += w3[r * stride + k] * x[k];
    }
#endif
#pragma omp simd
  for (int r = 0; r < R; ++r) y[r * step] = g[r] / (1.0f + exp_clamped(-g[r])) * u[r];
}

static void rows_range(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  const int full = N / ROWS * ROWS;
  for (int n = 0; n < full; n += ROWS) rows_block<ROWS>(W1 + (long)n * K, W3 + (long)n * K, x, y + n, K);
  for (int n = full; n < N; ++n) rows_block<1>(W1 + (long)n * K, W3 + (long)n * K, x, y + n, K);
}

extern "C" void gemv_swiglu_f32(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  // Small problems skip OpenMP entirely: even `omp parallel if (false)` costs microseconds.
  if ((long)N * K < PAR_THRESHOLD) {
    rows_range(W1, W3, x, y, N, K);
    return;
  }
#if SPREAD
  // Each thread's rows cut in ROWS parts, row j of every part done together: 2 * ROWS long
  // sequential streams (W1's and W3's) for the whole call, not 2 * ROWS one-row streams per block.
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long n0 = (long)N * t / nt, n1 = (long)N * (t + 1) / nt, part = (n1 - n0) / ROWS;
    for (long j = 0; j < part; ++j) rows_block<ROWS>(W1 + (n0 + j) * K, W3 + (n0 + j) * K, x, y + n0 + j, K, part);
    for (long n = n0 + part * ROWS; n < n1; ++n) rows_block<1>(W1 + n * K, W3 + n * K, x, y + n, K);
  }
#else
  const int blocks = N / ROWS, full = blocks * ROWS;
  // One parallel region for the whole FFN half (the unfused path has three): contiguous runs of
  // row blocks per thread, so each thread streams one stretch of W1 and the same stretch of W3.
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (int b = 0; b < blocks; ++b)
      rows_block<ROWS>(W1 + (long)b * ROWS * K, W3 + (long)b * ROWS * K, x, y + (long)b * ROWS, K);
#pragma omp for schedule(static)
    for (int n = full; n < N; ++n) rows_block<1>(W1 + (long)n * K, W3 + (long)n * K, x, y + n, K);
  }
#endif
}
