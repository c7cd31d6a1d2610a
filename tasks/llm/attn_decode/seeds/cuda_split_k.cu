// @kforge entry: attn_decode_f32
// @kforge about: flash-decoding: the cache split SPLITS ways per head, one warp per position for coalesced K reads, partial (max, sum, output) per split, then a combine launch
// @kforge param: BLOCK=128 in {64,128,256}
// @kforge param: SPLITS=16 in {4,8,16,32,64}
// @kforge param: CHUNK=64 in {32,64,128}
// @kforge launch: grid=(H, SPLITS, 1) block=(BLOCK)
// @kforge launch: grid=(H, 1, 2) block=(BLOCK)
// Launch 1 (gridDim.z == 1) writes each (head, split)'s running max, sum and unnormalized output
// to a static scratch sized for the task's limits (H <= 128, D <= 256); launch 2 (gridDim.z ==
// 2) rescales and adds them. The harness passes no workspace pointer yet, hence the static
// scratch and the launch geometry as the phase marker.
constexpr int MAX_H = 128, MAX_D = 256;
__device__ float split_out[MAX_H * SPLITS * MAX_D];
__device__ float split_max[MAX_H * SPLITS], split_sum[MAX_H * SPLITS];

extern "C" __global__ void attn_decode_f32(const float* q, const float* k_cache, const float* v_cache, float* o, int H,
                                           int KVH, int L, int D, float scale) {
  constexpr int WARPS = BLOCK / KFORGE_WARP_SIZE, PER_THREAD = (MAX_D + BLOCK - 1) / BLOCK;
  const int h = blockIdx.x, g = h / (H / KVH);
  const float neg_inf = __int_as_float(0xff800000);  // without <cmath>
  if (gridDim.z == 2) {  // combine
    float global_max = neg_inf;
    for (int s = 0; s < SPLITS; ++s) global_max = fmaxf(global_max, split_max[h * SPLITS + s]);
    float total = 0.0f;
    for (int s = 0; s < SPLITS; ++s) total += split_sum[h * SPLITS + s] * expf(split_max[h * SPLITS + s] - global_max);
    for (int d = threadIdx.x; d < D; d += BLOCK) {
      float acc = 0.0f;
      for (int s = 0; s < SPLITS; ++s)
        acc += split_out[(h * SPLITS + s) * MAX_D + d] * expf(split_max[h * SPLITS + s] - global_max);
      o[(long)h * D + d] = acc / total;
    }
    return;
  }
  __shared__ float qs[MAX_D];
  __shared__ float s[CHUNK];
  __shared__ float reduce[BLOCK];
  for (int d = threadIdx.x; d < D; d += BLOCK) qs[d] = q[(long)h * D + d];
  const int per_split = (L + SPLITS - 1) / SPLITS;
  const int begin = min(L, blockIdx.y * per_split), end = min(L, begin + per_split);
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  float acc[PER_THREAD] = {};
  float running_max = neg_inf, running_sum = 0.0f;
  __syncthreads();
  for (int t0 = begin; t0 < end; t0 += CHUNK) {
    const int n = min(CHUNK, end - t0);
    for (int i = warp; i < n; i += WARPS) {
      const float* k = k_cache + ((long)(t0 + i) * KVH + g) * D;
      float dot = 0.0f;
      for (int d = lane; d < D; d += KFORGE_WARP_SIZE) dot += qs[d] * k[d];
      for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (lane == 0) s[i] = dot * scale;
    }
    __syncthreads();
    // Every thread scans the chunk's scores from shared memory: CHUNK is small.
    float chunk_max = neg_inf;
    for (int i = 0; i < n; ++i) chunk_max = fmaxf(chunk_max, s[i]);
    const float new_max = fmaxf(running_max, chunk_max);
    const float rescale = expf(running_max - new_max);  // 0 on the first chunk (exp(-inf))
    __syncthreads();
    float local_sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += BLOCK) {
      s[i] = expf(s[i] - new_max);
      local_sum += s[i];
    }
    reduce[threadIdx.x] = local_sum;
    __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) reduce[threadIdx.x] += reduce[threadIdx.x + stride];
      __syncthreads();
    }
    running_sum = running_sum * rescale + reduce[0];
    running_max = new_max;
#pragma unroll
    for (int j = 0; j < PER_THREAD; ++j) {
      const int d = threadIdx.x + j * BLOCK;
      if (d < D) {
        float a = acc[j] * rescale;
        for (int i = 0; i < n; ++i) a += s[i] * v_cache[((long)(t0 + i) * KVH + g) * D + d];
        acc[j] = a;
      }
    }
    __syncthreads();  // s and reduce are rewritten by the next chunk
  }
  // An empty split (L < SPLITS) leaves max -inf and sum 0: the combine weighs it by exp(-inf) = 0.
  const int slot = h * SPLITS + blockIdx.y;
  if (threadIdx.x == 0) {
    split_max[slot] = running_max;
    split_sum[slot] = running_sum;
  }
#pragma unroll
  for (int j = 0; j < PER_THREAD; ++j) {
    const int d = threadIdx.x + j * BLOCK;
    if (d < D) split_out[slot * MAX_D + d] = acc[j];
  }
}
