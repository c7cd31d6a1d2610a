// @kforge entry: gemm_prefill_f32
// @kforge about: MR x NR register tiles of SIMD dot products, MC-token blocks of A kept in cache while the weight tiles go by; tiles across OpenMP threads
// @kforge param: MR=4 in {1,2,4,8}
// @kforge param: NR=4 in {1,2,4}
// @kforge param: MC=1024 in {32,64,128,256,1024}
// @kforge param: PAR_THRESHOLD=1073741824 in {65536,1048576,16777216,1073741824}

// C[m0.., n0..] for R tokens and S weight rows: R*S accumulators of LANES floats each (one
// vector register each with AVX-512), so every a and w load feeds S and R FMAs. Spelled out
// with a fixed lane loop: GCC 12 keeps an `omp simd` array-section reduction in memory.
template <int R, int S>
static inline void tile(const float* __restrict A, const float* __restrict W, float* __restrict C, int m0, int n0,
                        int N, int K) {
  constexpr int LANES = 16;
  float acc[R * S][LANES] = {};
  const float* __restrict a = A + (long)m0 * K;
  const float* __restrict w = W + (long)n0 * K;
  int k = 0;
  for (; k + LANES <= K; k += LANES)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
#pragma omp simd
        for (int j = 0; j < LANES; ++j) acc[r * S + s][j] += a[(long)r * K + k + j] * w[(long)s * K + k + j];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < LANES; ++j) sum += acc[r * S + s][j];
      for (int kk = k; kk < K; ++kk) sum += a[(long)r * K + kk] * w[(long)s * K + kk];
      C[(long)(m0 + r) * N + n0 + s] = sum;
    }
}

// Threads are off by default (PAR_THRESHOLD above every bench shape): on the shared 2-core
// machine this was tuned on, one thread ran 4x faster than two that waited on each other's
// barriers. The search can lower it where cores are free.
extern "C" void gemm_prefill_f32(const float* A, const float* W, float* C, int M, int N, int K) {
#pragma omp parallel if ((long)M * N * K >= PAR_THRESHOLD)
  for (int mc = 0; mc < M; mc += MC) {
    const int m_end = mc + MC < M ? mc + MC : M;
    // Every thread takes whole NR-row weight tiles and runs them past this block of A.
#pragma omp for schedule(static)
    for (int n0 = 0; n0 < N; n0 += NR)
      for (int m0 = mc; m0 < m_end; m0 += MR) {
        if (n0 + NR <= N && m0 + MR <= m_end) {
          tile<MR, NR>(A, W, C, m0, n0, N, K);
        } else {
          for (int m = m0; m < m_end && m < m0 + MR; ++m)
            for (int n = n0; n < N && n < n0 + NR; ++n) tile<1, 1>(A, W, C, m, n, N, K);
        }
      }
  }
}
