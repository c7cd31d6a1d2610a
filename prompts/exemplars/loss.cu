// Exemplar for the loss category: task basic/cross_entropy.
// loss[0] = mean over rows m of logsumexp(logits[m,:]) - logits[m, target[m]].
// Arguments: logits f32[M,V] in, target i32[M] in, loss f32[1] out, M, V.
// @kforge entry: cross_entropy_f32
// @kforge about: one block per row with a single-pass online log-sum-exp (running max and rescaled sum), merged by warp shuffles; row losses in the workspace, then a one-block mean
// @kforge param: BLOCK=256 in {128,256,512,1024}
// @kforge workspace: 4*M
// @kforge launch: grid=(M, 1, 1) block=(BLOCK)
// @kforge launch: grid=(1, 1, 2) block=(BLOCK)
// Launch 1 (gridDim.z == 1): block m writes row m's loss to workspace[m]. Launch 2 (gridDim.z ==
// 2): one block averages the M row losses in a fixed order, so the result is deterministic.
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it): never write 32.
constexpr int WARPS = BLOCK / KFORGE_WARP_SIZE;

// (max, sum of exp(x - max)) pairs combine exactly: rescale both sums to the larger max.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float top = fmaxf(m, m2);
  if (top == __int_as_float(0xff800000)) return;  // both empty (-inf): keep (-inf, 0)
  s = s * __expf(m - top) + s2 * __expf(m2 - top);
  m = top;
}

extern "C" __global__ void cross_entropy_f32(const float* __restrict__ logits, const int* __restrict__ target,
                                             float* __restrict__ loss, int M, int V, void* workspace) {
  __shared__ float warp_m[WARPS], warp_s[WARPS];
  float* row_loss = static_cast<float*>(workspace);
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  if (gridDim.z == 2) {
    float sum = 0.0f;
    for (int m = threadIdx.x; m < M; m += BLOCK) sum += row_loss[m];
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) warp_s[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      float total = 0.0f;
      for (int i = 0; i < WARPS; ++i) total += warp_s[i];
      loss[0] = total / M;
    }
    return;
  }
  const float* row = logits + (long)blockIdx.x * V;
  // One read of the row: when a larger value arrives, the running sum is rescaled to it.
  float m = __int_as_float(0xff800000), s = 0.0f;
  for (int v = threadIdx.x; v < V; v += BLOCK) {
    const float value = row[v];
    if (value > m) {
      s = s * __expf(m - value) + 1.0f;
      m = value;
    } else {
      s += __expf(value - m);
    }
  }
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2)
    merge(m, s, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, s, offset));
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float top = warp_m[0], total = warp_s[0];
    for (int i = 1; i < WARPS; ++i) merge(top, total, warp_m[i], warp_s[i]);
    row_loss[blockIdx.x] = logf(total) + top - row[target[blockIdx.x]];
  }
}
