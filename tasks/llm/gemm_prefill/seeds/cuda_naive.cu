// @kforge entry: gemm_prefill_f32
// @kforge about: naive: TILE x TILE output tiles, A and W tiles staged through shared memory, one output per thread
// @kforge param: TILE=16 in {8,16,32}
// @kforge launch: grid=(ceil_div(N, TILE), ceil_div(M, TILE)) block=(TILE, TILE)
extern "C" __global__ void gemm_prefill_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  __shared__ float a_tile[TILE][TILE + 1], w_tile[TILE][TILE + 1];
  const int m = blockIdx.y * TILE + threadIdx.y, n = blockIdx.x * TILE + threadIdx.x;
  float sum = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    // Row threadIdx.y of each tile, loaded along k by threadIdx.x (coalesced).
    const int k = k0 + threadIdx.x;
    const int wn = blockIdx.x * TILE + threadIdx.y;
    a_tile[threadIdx.y][threadIdx.x] = m < M && k < K ? A[(long)m * K + k] : 0.0f;
    w_tile[threadIdx.y][threadIdx.x] = wn < N && k < K ? W[(long)wn * K + k] : 0.0f;
    __syncthreads();
    for (int j = 0; j < TILE; ++j) sum += a_tile[threadIdx.y][j] * w_tile[threadIdx.x][j];
    __syncthreads();
  }
  if (m < M && n < N) C[(long)m * N + n] = sum;
}
