// Exemplar for the normalization category: task basic/layernorm.
// y[m,n] = (x[m,n] - mean_m) / sqrt(var_m + eps) * w[n] + b[n], mean and biased variance per row.
// Arguments: x f32[M,N] in, w f32[N] in, b f32[N] in, y f32[M,N] out, M, N, eps f32.
// @kforge entry: layernorm_f32
// @kforge about: one block per row; the row kept in registers (up to MAX_PER_THREAD per thread) across a centred two-pass mean/variance; warp shuffles, then one shared-memory step
// @kforge param: BLOCK=256 in {128,256,512,1024}
// @kforge param: MAX_PER_THREAD=8 in {4,8,16,32}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it): never write 32.
constexpr int WARPS = BLOCK / KFORGE_WARP_SIZE;

// Sum over the block: shuffles within each warp, then every thread adds the per-warp sums.
__device__ __forceinline__ float block_sum(float v, float* warp_sums) {
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % KFORGE_WARP_SIZE == 0) warp_sums[threadIdx.x / KFORGE_WARP_SIZE] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < WARPS; ++i) total += warp_sums[i];
  __syncthreads();  // warp_sums is reused by the next call
  return total;
}

extern "C" __global__ void layernorm_f32(const float* x, const float* w, const float* b, float* y, int M, int N,
                                         float eps) {
  __shared__ float warp_sums[WARPS];
  const float* row = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  // Pass 1: load the row once (coalesced: element threadIdx.x + i * BLOCK) and sum it.
  float kept[MAX_PER_THREAD];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int n = threadIdx.x + i * BLOCK;
    kept[i] = n < N ? row[n] : 0.0f;
    sum += kept[i];
  }
  for (int n = threadIdx.x + MAX_PER_THREAD * BLOCK; n < N; n += BLOCK) sum += row[n];  // rows longer than the registers
  const float mean = block_sum(sum, warp_sums) / N;
  // Pass 2: the centred variance, from registers (no E[x^2] - mean^2 cancellation).
  float sq = 0.0f;
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int n = threadIdx.x + i * BLOCK;
    const float d = kept[i] - mean;
    sq += n < N ? d * d : 0.0f;
  }
  for (int n = threadIdx.x + MAX_PER_THREAD * BLOCK; n < N; n += BLOCK) sq += (row[n] - mean) * (row[n] - mean);
  const float inv = rsqrtf(block_sum(sq, warp_sums) / N + eps);
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int n = threadIdx.x + i * BLOCK;
    if (n < N) out[n] = (kept[i] - mean) * inv * w[n] + b[n];
  }
  for (int n = threadIdx.x + MAX_PER_THREAD * BLOCK; n < N; n += BLOCK) out[n] = (row[n] - mean) * inv * w[n] + b[n];
}
