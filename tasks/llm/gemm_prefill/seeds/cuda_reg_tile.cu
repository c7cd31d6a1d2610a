// @kforge entry: gemm_prefill_f32
// @kforge about: BM x BN block tiles, each thread a TM x TN register tile; A and W tiles staged k-major in shared memory by BK
// @kforge param: BM=64 in {32,64,128}
// @kforge param: BN=64 in {32,64,128}
// @kforge param: BK=16 in {8,16,32}
// @kforge param: TM=4 in {4,8}
// @kforge param: TN=4 in {4,8}
// @kforge launch: grid=(ceil_div(N, BN), ceil_div(M, BM)) block=((BM/TM)*(BN/TN))
// TM, TN >= 4 keep (BM/TM)*(BN/TN) within 1024 threads for every choice. Shared tiles are
// stored k-major (as[k][m]) so a thread's TM and TN operands sit in consecutive words. Every
// load is guarded, so any M, N, K works.
extern "C" __global__ void gemm_prefill_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  constexpr int THREADS = (BM / TM) * (BN / TN);
  __shared__ float as[BK][BM + 4], ws[BK][BN + 4];
  const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
  const int m_block = blockIdx.y * BM, n_block = blockIdx.x * BN;
  float acc[TM][TN] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    // Consecutive threads read consecutive k of one row: coalesced along k.
    for (int i = threadIdx.x; i < BM * BK; i += THREADS) {
      const int r = i / BK, k = i % BK;
      const int m = m_block + r, kk = k0 + k;
      as[k][r] = m < M && kk < K ? A[(long)m * K + kk] : 0.0f;
    }
    for (int i = threadIdx.x; i < BN * BK; i += THREADS) {
      const int r = i / BK, k = i % BK;
      const int n = n_block + r, kk = k0 + k;
      ws[k][r] = n < N && kk < K ? W[(long)n * K + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], w[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = as[k][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) w[j] = ws[k][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * w[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int m = m_block + ty * TM + i, n = n_block + tx * TN + j;
      if (m < M && n < N) C[(long)m * N + n] = acc[i][j];
    }
}
