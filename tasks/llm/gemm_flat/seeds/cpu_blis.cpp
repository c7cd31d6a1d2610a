// @kforge entry: gemm_flat_f32
// @kforge about: BLIS-style on C^T = W A^T: A packed transposed (k-major, tokens in vectors, 8x8 register transposes), an RW x MV register tile (broadcast RW weight rows straight from W, FMA into RW x MV vector accumulators), W streamed once with software prefetch, KC/MC blocking, threads over N ranges without barriers
// @kforge param: VEC=16 in {8,16}
// @kforge param: RW=6 in {2,4,6,8,12,14}
// @kforge param: MV=4 in {1,2,3,4}
// @kforge param: KC=1024 in {256,512,768,1024,2048,4096}
// @kforge param: MC=64 in {32,64,128,256,512}
// @kforge param: PFD=128 in {0,64,128,256,512}
// @kforge param: NTHREADS=0 in {0,1,2,4}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,16777216}
#include <cstdlib>
#include <immintrin.h>
#include <omp.h>

// C[M, N] = A[M, K] W[N, K]^T. Both operands are k-contiguous, so a tile that puts output
// columns n in vectors would have to transpose all of W (N x K, the big operand) on every call.
// Computed as C^T = W A^T instead, the tokens m go in the vector lanes: only A (M x K, small) is
// packed transposed, A^T[k][m] in panels of MV vectors, and each weight W[n, k] is broadcast
// straight from its row. A tile of RW weight rows then reads RW k-contiguous streams that
// together are one contiguous run of W (when KC >= K), prefetched PFD floats ahead, so W comes
// from memory once, overlapped with the FMAs, and is never copied. The price is a transposed
// store of each RW x (MV vectors) tile into row-major C, paid once per KC block.

// Vector types as traits, so one micro-kernel serves the full width and a half-width panel.
#if defined(__AVX512F__)
struct Z16 {
  typedef __m512 v;
  static constexpr int L = 16;
  static v load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, v a) { _mm512_storeu_ps(p, a); }
  static v set1(float x) { return _mm512_set1_ps(x); }
  static v zero() { return _mm512_setzero_ps(); }
  static v fma(v a, v b, v c) { return _mm512_fmadd_ps(a, b, c); }
};
#endif
#if defined(__AVX2__) && defined(__FMA__)
struct Y8 {
  typedef __m256 v;
  static constexpr int L = 8;
  static v load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, v a) { _mm256_storeu_ps(p, a); }
  static v set1(float x) { return _mm256_set1_ps(x); }
  static v zero() { return _mm256_setzero_ps(); }
  static v fma(v a, v b, v c) { return _mm256_fmadd_ps(a, b, c); }
};
#endif
// Plain C++ fallback: a 4-float "vector" the compiler may map to SSE.
struct S4 {
  struct v {
    float x[4];
  };
  static constexpr int L = 4;
  static v load(const float* p) { return v{{p[0], p[1], p[2], p[3]}}; }
  static void store(float* p, v a) {
    for (int i = 0; i < 4; ++i) p[i] = a.x[i];
  }
  static v set1(float x) { return v{{x, x, x, x}}; }
  static v zero() { return v{{0, 0, 0, 0}}; }
  static v fma(v a, v b, v c) {
    for (int i = 0; i < 4; ++i) c.x[i] += a.x[i] * b.x[i];
    return c;
  }
};

// VF: the vector of VEC lanes where the machine has it. HF: a half-width vector for a last
// panel of at most HL tokens (M = 8 would waste half of every 16-lane FMA; on Zen 4 two 8-lane
// FMAs issue per cycle, so the half width loses nothing).
#if VEC >= 16 && defined(__AVX512F__)
typedef Z16 VF;
typedef Y8 HF;
#elif defined(__AVX2__) && defined(__FMA__)
typedef Y8 VF;
typedef Y8 HF;
#else
typedef S4 VF;
typedef S4 HF;
#endif
constexpr int LN = VF::L, HL = HF::L;

constexpr int PM = MV * LN;                          // tokens per packed A^T panel
constexpr int MCB = MC < PM ? PM : MC / PM * PM;      // tokens per packed block, whole panels

// A panel of `rows` tokens is packed pw wide: whole vectors, or HL if that holds them.
static inline int panel_width(int rows) { return HL < LN && rows <= HL ? HL : (rows + LN - 1) / LN * LN; }

// acc[r][v] = sum_k W[n0 + r, k] * A^T[k, v-th vector of the panel] for R weight rows and V
// vectors of tokens (R <= RW, V <= MV at the edges). `first` stores into C, later K blocks add.
// rows = tokens of this panel that exist (<= V * T::L): the padded lanes are computed, not stored.
template <class T, int R, int V>
static inline void micro(int kc, const float* __restrict w, long ldw, const float* __restrict at,
                         float* __restrict c, long ldc, bool first, int rows) {
  typedef typename T::v vt;
  constexpr int PW = V * T::L;  // this panel's width
  vt acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = T::zero();
  int k = 0;
  if (PFD > 0) {
    // One prefetch per weight row and cache line, PFD floats ahead of the FMAs.
    for (; k + 16 <= kc; k += 16) {
      for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(w + r * ldw + k + PFD), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int kk = k; kk < k + 16; ++kk) {
        vt av[V];
        for (int v = 0; v < V; ++v) av[v] = T::load(at + (long)kk * PW + v * T::L);
        for (int r = 0; r < R; ++r) {
          const vt wv = T::set1(w[r * ldw + kk]);
          for (int v = 0; v < V; ++v) acc[r][v] = T::fma(wv, av[v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (; k < kc; ++k) {
    vt av[V];
    for (int v = 0; v < V; ++v) av[v] = T::load(at + (long)k * PW + v * T::L);
    for (int r = 0; r < R; ++r) {
      const vt wv = T::set1(w[r * ldw + k]);
      for (int v = 0; v < V; ++v) acc[r][v] = T::fma(wv, av[v], acc[r][v]);
    }
  }
  // Transposed store: C[m, n0 + r] = acc[r][m].
  alignas(64) float t[R][PW];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) T::store(&t[r][v * T::L], acc[r][v]);
  if (first) {
    for (int m = 0; m < rows; ++m)
      for (int r = 0; r < R; ++r) c[m * ldc + r] = t[r][m];
  } else {
    for (int m = 0; m < rows; ++m)
      for (int r = 0; r < R; ++r) c[m * ldc + r] += t[r][m];
  }
}

// Edge tiles: fewer weight rows (N % RW) or fewer token vectors (the last panel, maybe half
// wide) run the same kernel instantiated smaller.
template <int R, int V>
static inline void micro_v(int pw, int kc, const float* w, long ldw, const float* at, float* c, long ldc, bool first,
                           int rows) {
  if constexpr (V >= 1) {
    if (pw == V * LN)
      micro<VF, R, V>(kc, w, ldw, at, c, ldc, first, rows);
    else
      micro_v<R, V - 1>(pw, kc, w, ldw, at, c, ldc, first, rows);
  } else {
    micro<HF, R, 1>(kc, w, ldw, at, c, ldc, first, rows);  // pw == HL < LN
  }
}
template <int R>
static inline void micro_rv(int nr, int pw, int kc, const float* w, long ldw, const float* at, float* c, long ldc,
                            bool first, int rows) {
  if constexpr (R >= 1) {
    if (nr == R)
      micro_v<R, MV>(pw, kc, w, ldw, at, c, ldc, first, rows);
    else
      micro_rv<R - 1>(nr, pw, kc, w, ldw, at, c, ldc, first, rows);
  }
}

#if defined(__AVX__)
// dst[i * dld + j] = src[j * ld + i] for an 8 x 8 block: unpack pairs, shuffle quads, swap halves.
static inline void transpose8(const float* __restrict src, long ld, float* __restrict dst, long dld) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld);
  const __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
  const __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
  const __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * dld, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * dld, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * dld, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * dld, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * dld, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * dld, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * dld, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * dld, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

// A rows m0 .. m0 + mc, k = k0 .. k0 + kc, transposed into panels of PM tokens: panel p, pw
// tokens wide (panel_width), starts at
// dst + p * kc * PM and holds [k * pw + i] = A[m0 + p * PM + i, k0 + k], zero for tokens past M
// (their lanes are computed and dropped).
static void pack_at(const float* __restrict A, int M, int K, int m0, int mc, int k0, int kc, float* __restrict dst) {
  for (int p = 0; p * PM < mc; ++p) {
    const int rows = mc - p * PM < PM ? mc - p * PM : PM;
    const int pw = panel_width(rows);
    float* __restrict d = dst + (long)p * kc * PM;
    for (int g = 0; g < pw; g += 8) {
      const int row = m0 + p * PM + g;
      const float* __restrict a = A + (long)row * K + k0;
      int k = 0;
#if defined(__AVX__)
      if (row + 8 <= M && g + 8 <= pw)
        for (; k + 8 <= kc; k += 8) transpose8(a + k, K, d + (long)k * pw + g, pw);
#endif
      for (int kk = k; kk < kc; ++kk)
        for (int j = 0; j < 8 && g + j < pw; ++j) d[(long)kk * pw + g + j] = row + j < M ? a[(long)j * K + kk] : 0.0f;
    }
  }
}

// Pack buffers, one per thread, grown on demand and kept between calls (scratch only: every call
// packs its own A).
constexpr int MAX_THREADS = 256;
static float* g_buf[MAX_THREADS];
static long g_cap[MAX_THREADS];

static float* thread_buffer(int tid, long floats) {
  if (g_cap[tid] < floats) {
    std::free(g_buf[tid]);
    const long bytes = (floats * 4 + 63) / 64 * 64;
    g_buf[tid] = static_cast<float*>(std::aligned_alloc(64, bytes));
    g_cap[tid] = g_buf[tid] ? floats : 0;
  }
  return g_buf[tid];
}

// One thread's share: output columns [n_lo, n_hi) for all M tokens.
static void gemm_range(const float* A, const float* W, float* C, int M, int N, int K, int n_lo, int n_hi, float* ap) {
  for (int pc = 0; pc < K; pc += KC) {
    const int kc = K - pc < KC ? K - pc : KC;
    const bool first = pc == 0;
    for (int ic = 0; ic < M; ic += MCB) {
      const int mc = M - ic < MCB ? M - ic : MCB;
      pack_at(A, M, K, ic, mc, pc, kc, ap);
      // Each RW-row weight tile goes past every token panel of the block while it is in L1.
      for (int n0 = n_lo; n0 < n_hi; n0 += RW) {
        const int nr = n_hi - n0 < RW ? n_hi - n0 : RW;
        const float* w = W + (long)n0 * K + pc;
        for (int p = 0; p * PM < mc; ++p) {
          const int rows = mc - p * PM < PM ? mc - p * PM : PM;
          micro_rv<RW>(nr, panel_width(rows), kc, w, K, ap + (long)p * kc * PM, C + (long)(ic + p * PM) * N + n0, N, first, rows);
        }
      }
    }
  }
}

extern "C" void gemm_flat_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  const long tiles = (N + RW - 1) / RW;
  int nt = NTHREADS > 0 ? NTHREADS : omp_get_max_threads();
  if ((long)M * N * K < PAR_THRESHOLD) nt = 1;
  if (nt > tiles) nt = (int)tiles;
  if (nt > MAX_THREADS) nt = MAX_THREADS;
  if (nt < 1) nt = 1;
  const int kcmax = K < KC ? K : KC;
  const long need = (long)kcmax * ((M < MCB ? M : MCB) + PM);
  // Each thread takes a contiguous run of whole weight tiles and packs its own A^T: no shared
  // buffer, so no barrier between packing and computing.
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int n_lo = (int)(tiles * t / T * RW), n_hi0 = (int)(tiles * (t + 1) / T * RW);
    const int n_hi = n_hi0 < N ? n_hi0 : N;
    float* ap = thread_buffer(t, need);
    if (n_lo < n_hi) gemm_range(A, W, C, M, N, K, n_lo, n_hi, ap);
  }
}
