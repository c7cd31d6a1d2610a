// Exemplar (fuse): a kernel for task basic/matmul_bias_relu, from its seed seeds/cuda_reg_tile.cu.
// Semantics: y[m,n] = max(0, sum_k x[m,k] * W[n,k] + b[n]) (linear layer, bias and ReLU fused into the epilogue).
// Arguments: x f32[M,K] in, W f32[N,K] in, b f32[N] in, y f32[M,N] out, M, N, K
// @kforge entry: matmul_bias_relu_f32
// @kforge about: 64 x 64 output tiles per 256-thread block, each thread a 4 x 4 register tile (rows ty + 16i, columns tx + 16j: coalesced stores, conflict-free shared reads); x and W tiles staged K-major in shared memory BK at a time; bias and ReLU in the epilogue
// @kforge param: BK=16 in {8,16,32}
// @kforge launch: grid=(ceil_div(N, 64), ceil_div(M, 64)) block=(16, 16)
extern "C" __global__ void matmul_bias_relu_f32(const float* x, const float* W, const float* b, float* y, int M, int N,
                                                int K) {
  __shared__ float xs[BK][64 + 1];  // xs[k][r] = x[m0 + r, k0 + k]: K-major, so the inner loop reads rows
  __shared__ float ws[BK][64 + 1];  // ws[k][c] = W[n0 + c, k0 + k]
  const int tx = threadIdx.x, ty = threadIdx.y, t = ty * 16 + tx;
  const int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    // 64 x BK elements of each operand, 256 threads: consecutive threads read consecutive k.
    for (int e = t; e < 64 * BK; e += 256) {
      const int r = e / BK, kk = e % BK;
      const bool k_ok = k0 + kk < K;
      xs[kk][r] = (m0 + r < M && k_ok) ? x[(long)(m0 + r) * K + k0 + kk] : 0.0f;
      ws[kk][r] = (n0 + r < N && k_ok) ? W[(long)(n0 + r) * K + k0 + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[j] = ws[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * w[j];
    }
    __syncthreads();  // the tiles are overwritten next step
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n < N) y[(long)m * N + n] = fmaxf(acc[i][j] + b[n], 0.0f);
    }
  }
}
