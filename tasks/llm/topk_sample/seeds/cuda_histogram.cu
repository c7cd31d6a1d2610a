// @kforge entry: topk_sample_f32
// @kforge about: one block: a 4096-bin histogram of order-preserving keys finds the bin holding the K-th logit; the few candidates at or above it are ranked all at once in shared memory
// @kforge param: BLOCK=1024 in {256,512,1024}
// @kforge param: CAPACITY=2048 in {1024,2048}
// @kforge launch: grid=(1) block=(BLOCK)
// If more than CAPACITY logits share the top bins (a flat distribution), it falls back to K
// block-wide argmax rounds over all logits, as the naive seed does.
constexpr int BINS = 4096;

__device__ __forceinline__ bool precedes(float a, int a_index, float b, int b_index) {
  return a_index >= 0 && (b_index < 0 || a > b || (a == b && a_index < b_index));
}
// Larger float, larger key: negative floats have every bit flipped, positive ones the sign bit.
__device__ __forceinline__ unsigned bin_of(float v) {
  const unsigned bits = __float_as_uint(v);
  return (bits & 0x80000000u ? ~bits : bits | 0x80000000u) >> 20;
}

extern "C" __global__ void topk_sample_f32(const float* logits, int* token, int V, int K, float temperature, float u) {
  __shared__ int histogram[BINS];
  __shared__ float candidate[CAPACITY];
  __shared__ int candidate_index[CAPACITY];
  __shared__ float chosen[128];
  __shared__ int chosen_index[128];
  __shared__ int slice_sum[BLOCK];
  __shared__ int threshold_bin, count;
  __shared__ float best[BLOCK];
  __shared__ int best_index[BLOCK];

  for (int b = threadIdx.x; b < BINS; b += BLOCK) histogram[b] = 0;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  for (int n = threadIdx.x; n < V; n += BLOCK) atomicAdd(&histogram[bin_of(logits[n])], 1);
  __syncthreads();
  // Thread t sums bins [t * per, (t + 1) * per); thread 0 walks the slices, then the bins, from
  // the top until K logits are covered.
  constexpr int PER = BINS / BLOCK;
  int sum = 0;
  for (int b = 0; b < PER; ++b) sum += histogram[threadIdx.x * PER + b];
  slice_sum[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    int covered = 0, slice = BLOCK - 1;
    while (covered + slice_sum[slice] < K) covered += slice_sum[slice--];
    int b = slice * PER + PER - 1;
    while (covered + histogram[b] < K) covered += histogram[b--];
    threshold_bin = b;
  }
  __syncthreads();
  const unsigned threshold = threshold_bin;
  for (int n = threadIdx.x; n < V; n += BLOCK) {
    const float v = logits[n];
    if (bin_of(v) >= threshold) {
      const int slot = atomicAdd(&count, 1);
      if (slot < CAPACITY) {
        candidate[slot] = v;
        candidate_index[slot] = n;
      }
    }
  }
  __syncthreads();
  const int candidates = count;
  if (candidates <= CAPACITY) {
    // Rank = how many candidates come first; ranks are distinct, and every top-K logit is here.
    for (int c = threadIdx.x; c < candidates; c += BLOCK) {
      int rank = 0;
      for (int j = 0; j < candidates; ++j)
        rank += precedes(candidate[j], candidate_index[j], candidate[c], candidate_index[c]);
      if (rank < K) {
        chosen[rank] = candidate[c];
        chosen_index[rank] = candidate_index[c];
      }
    }
  } else {
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
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  float total = 0.0f;
  for (int r = 0; r < K; ++r) total += __expf((chosen[r] - chosen[0]) / temperature);
  float cumulative = 0.0f;
  for (int r = 0; r < K; ++r) {
    cumulative += __expf((chosen[r] - chosen[0]) / temperature);
    if (cumulative > u * total) {
      token[0] = chosen_index[r];
      return;
    }
  }
  token[0] = chosen_index[K - 1];
}
