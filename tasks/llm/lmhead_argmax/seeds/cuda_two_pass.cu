// @kforge entry: lmhead_argmax_f32
// @kforge about: one warp per row (float4 loads when K % 4 == 0), a block-level argmax per block into a static scratch, then a one-block combine launch
// @kforge param: BLOCK=256 in {128,256,512}
// @kforge param: ROWS=32 in {8,16,32,64}
// @kforge launch: grid=(min(ceil_div(V, ROWS), 8192), 1, 1) block=(BLOCK)
// @kforge launch: grid=(1, 1, 2) block=(BLOCK)
// Launch 1 (gridDim.z == 1): block b takes row groups b, b + gridDim.x, ... of ROWS rows and
// leaves its best (logit, row) in the scratch. Launch 2 (gridDim.z == 2) reduces the scratch.
// The harness passes no workspace pointer yet, hence the static scratch and the launch geometry
// as the phase marker.
constexpr int MAX_BLOCKS = 8192;
__device__ float block_best[MAX_BLOCKS];
__device__ int block_best_index[MAX_BLOCKS];

__device__ __forceinline__ bool beats(float a, int a_index, float b, int b_index) {
  return a_index >= 0 && (b_index < 0 || a > b || (a == b && a_index < b_index));
}

// Block-wide argmax of (mine, mine_index) through shared memory; the answer lands in slot 0.
__device__ void block_argmax(float mine, int mine_index, float* best, int* best_index) {
  best[threadIdx.x] = mine;
  best_index[threadIdx.x] = mine_index;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride &&
        beats(best[threadIdx.x + stride], best_index[threadIdx.x + stride], best[threadIdx.x], best_index[threadIdx.x])) {
      best[threadIdx.x] = best[threadIdx.x + stride];
      best_index[threadIdx.x] = best_index[threadIdx.x + stride];
    }
    __syncthreads();
  }
}

extern "C" __global__ void lmhead_argmax_f32(const float* W, const float* x, int* token, int V, int K) {
  __shared__ float best[BLOCK];
  __shared__ int best_index[BLOCK];
  const int blocks = min((V + ROWS - 1) / ROWS, MAX_BLOCKS);
  float mine = 0.0f;
  int mine_index = -1;
  if (gridDim.z == 2) {  // combine
    for (int b = threadIdx.x; b < blocks; b += BLOCK)
      if (beats(block_best[b], block_best_index[b], mine, mine_index)) {
        mine = block_best[b];
        mine_index = block_best_index[b];
      }
    block_argmax(mine, mine_index, best, best_index);
    if (threadIdx.x == 0) token[0] = best_index[0];
    return;
  }
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  for (int n0 = blockIdx.x * ROWS; n0 < V; n0 += gridDim.x * ROWS)
    for (int n = n0 + threadIdx.x / KFORGE_WARP_SIZE; n < min(V, n0 + ROWS); n += warps) {
      const float* w = W + (long)n * K;
      float sum = 0.0f;
      if (K % 4 == 0) {
        for (int k4 = lane; k4 < K / 4; k4 += KFORGE_WARP_SIZE) {
          const float4 wv = reinterpret_cast<const float4*>(w)[k4], xv = reinterpret_cast<const float4*>(x)[k4];
          sum += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
        }
      } else {
        for (int k = lane; k < K; k += KFORGE_WARP_SIZE) sum += w[k] * x[k];
      }
      for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      if (beats(sum, n, mine, mine_index)) {  // every lane holds the full sum
        mine = sum;
        mine_index = n;
      }
    }
  block_argmax(mine, mine_index, best, best_index);
  if (threadIdx.x == 0) {
    block_best[blockIdx.x] = best[0];
    block_best_index[blockIdx.x] = best_index[0];
  }
}
