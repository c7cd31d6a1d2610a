// @kforge entry: topk_sample_f32
// @kforge about: naive: one block; K rounds, each a block-wide argmax over the logits that come after the previous pick; thread 0 walks the weights
// @kforge param: BLOCK=512 in {128,256,512,1024}
// @kforge launch: grid=(1) block=(BLOCK)
// Whether (a, a_index) comes before (b, b_index): larger value, then lower index; index -1 is last.
__device__ __forceinline__ bool precedes(float a, int a_index, float b, int b_index) {
  return a_index >= 0 && (b_index < 0 || a > b || (a == b && a_index < b_index));
}

extern "C" __global__ void topk_sample_f32(const float* logits, int* token, int V, int K, float temperature, float u) {
  __shared__ float best[BLOCK];
  __shared__ int best_index[BLOCK];
  __shared__ float chosen[128];
  __shared__ int chosen_index[128];
  for (int r = 0; r < K; ++r) {
    float mine = 0.0f;
    int mine_index = -1;
    for (int n = threadIdx.x; n < V; n += BLOCK) {
      const float v = logits[n];
      if (r > 0 && !precedes(chosen[r - 1], chosen_index[r - 1], v, n)) continue;
      if (precedes(v, n, mine, mine_index)) {
        mine = v;
        mine_index = n;
      }
    }
    best[threadIdx.x] = mine;
    best_index[threadIdx.x] = mine_index;
    __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride &&
          precedes(best[threadIdx.x + stride], best_index[threadIdx.x + stride], best[threadIdx.x], best_index[threadIdx.x])) {
        best[threadIdx.x] = best[threadIdx.x + stride];
        best_index[threadIdx.x] = best_index[threadIdx.x + stride];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      chosen[r] = best[0];
      chosen_index[r] = best_index[0];
    }
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  float total = 0.0f;
  for (int r = 0; r < K; ++r) total += expf((chosen[r] - chosen[0]) / temperature);
  float cumulative = 0.0f;
  for (int r = 0; r < K; ++r) {
    cumulative += expf((chosen[r] - chosen[0]) / temperature);
    if (cumulative > u * total) {
      token[0] = chosen_index[r];
      return;
    }
  }
  token[0] = chosen_index[K - 1];
}
