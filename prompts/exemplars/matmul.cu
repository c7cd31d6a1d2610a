// Exemplar for the matmul category: task basic/matmul_batched.
// C[b] = A[b] B[b]: C[b,m,n] = sum_k A[b,m,k] * B[b,k,n], all row-major.
// Arguments: A f32[BATCH,M,K] in, B f32[BATCH,K,N] in, C f32[BATCH,M,N] out, BATCH, M, N, K.
// @kforge entry: matmul_batched_f32
// @kforge about: 64 x 64 C tiles per 256-thread block, 16-deep K slabs of A and B staged in shared memory, 4 x 4 outputs per thread in registers; batch entries along grid z
// @kforge launch: grid=(ceil_div(N, 64), ceil_div(M, 64), BATCH) block=(256)
constexpr int BM = 64, BN = 64, BK = 16, THREADS = 256;
constexpr int TM = 4, TN = 4;  // outputs per thread: (BM / TM) * (BN / TN) = THREADS

extern "C" __global__ void matmul_batched_f32(const float* __restrict__ A, const float* __restrict__ B,
                                              float* __restrict__ C, int BATCH, int M, int N, int K) {
  // As is stored transposed ([k][m]) so that the inner loop reads a column of the A slab as a
  // row; the +1 pad spreads the transposing stores over the shared-memory banks.
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN];
  const float* a = A + (long)blockIdx.z * M * K;
  const float* b = B + (long)blockIdx.z * K * N;
  float* c = C + (long)blockIdx.z * M * N;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  // Thread (tx, ty) owns rows ty + 16 i and columns tx + 16 j of the tile: neighbouring threads
  // read neighbouring Bs columns (no bank conflicts) and store neighbouring C columns (coalesced).
  const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
  float acc[TM][TN] = {};

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Stage the slabs, zero-filled outside the matrices so the tails need no special case.
#pragma unroll
    for (int l = 0; l < BM * BK / THREADS; ++l) {
      const int e = threadIdx.x + l * THREADS, r = e / BK, kk = e % BK;
      const int gm = m0 + r, gk = k0 + kk;
      As[kk][r] = gm < M && gk < K ? a[(long)gm * K + gk] : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < BK * BN / THREADS; ++l) {
      const int e = threadIdx.x + l * THREADS, kk = e / BN, col = e % BN;
      const int gk = k0 + kk, gn = n0 + col;
      Bs[kk][col] = gk < K && gn < N ? b[(long)gk * N + gn] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float ar[TM], br[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) ar[i] = As[kk][ty + i * (BM / TM)];
#pragma unroll
      for (int j = 0; j < TN; ++j) br[j] = Bs[kk][tx + j * (BN / TN)];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ar[i] * br[j];
    }
    __syncthreads();  // the slabs are overwritten next iteration
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int m = m0 + ty + i * (BM / TM), n = n0 + tx + j * (BN / TN);
      if (m < M && n < N) c[(long)m * N + n] = acc[i][j];
    }
}
