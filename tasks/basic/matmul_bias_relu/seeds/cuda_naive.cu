// @kforge entry: matmul_bias_relu_f32
// @kforge about: naive: TILE x TILE output tiles, x and W tiles staged in shared memory along K (coalesced loads), bias and ReLU in the epilogue
// @kforge param: TILE=16 in {8,16,32}
// @kforge launch: grid=(ceil_div(N, TILE), ceil_div(M, TILE)) block=(TILE, TILE)
extern "C" __global__ void matmul_bias_relu_f32(const float* x, const float* W, const float* b, float* y, int M, int N,
                                                int K) {
  __shared__ float xs[TILE][TILE];
  __shared__ float ws[TILE][TILE + 1];  // +1: the transposed read below is free of bank conflicts
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int m = blockIdx.y * TILE + ty, n = blockIdx.x * TILE + tx;
  const int w_row = blockIdx.x * TILE + ty;  // the W row this thread stages
  float sum = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    xs[ty][tx] = (m < M && k0 + tx < K) ? x[(long)m * K + k0 + tx] : 0.0f;
    ws[ty][tx] = (w_row < N && k0 + tx < K) ? W[(long)w_row * K + k0 + tx] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TILE; ++kk) sum += xs[ty][kk] * ws[tx][kk];
    __syncthreads();
  }
  if (m < M && n < N) y[(long)m * N + n] = fmaxf(sum + b[n], 0.0f);
}
