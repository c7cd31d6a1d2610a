// @kforge entry: cross_entropy_f32
// @kforge about: naive: one block per row (shared-memory tree reductions for the max and the sum of expf) into the workspace, then a one-block mean
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge workspace: 4*M
// @kforge launch: grid=(M, 1, 1) block=(BLOCK)
// @kforge launch: grid=(1, 1, 2) block=(BLOCK)
// Launch 1 (gridDim.z == 1): block m writes row m's loss to workspace[m]. Launch 2 (gridDim.z
// == 2): one block averages them, in a fixed order, so the result is deterministic.
__device__ float block_reduce(float v, float* partial, bool is_max) {
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float other = partial[threadIdx.x + stride];
      partial[threadIdx.x] = is_max ? fmaxf(partial[threadIdx.x], other) : partial[threadIdx.x] + other;
    }
    __syncthreads();
  }
  const float result = partial[0];
  __syncthreads();
  return result;
}

extern "C" __global__ void cross_entropy_f32(const float* logits, const int* target, float* loss, int M, int V,
                                             void* workspace) {
  __shared__ float partial[BLOCK];
  float* row_loss = static_cast<float*>(workspace);
  if (gridDim.z == 2) {
    float sum = 0.0f;
    for (int m = threadIdx.x; m < M; m += BLOCK) sum += row_loss[m];
    sum = block_reduce(sum, partial, false);
    if (threadIdx.x == 0) loss[0] = sum / M;
    return;
  }
  const float* row = logits + (long)blockIdx.x * V;
  float max_value = __int_as_float(0xff800000);  // -infinity
  for (int v = threadIdx.x; v < V; v += BLOCK) max_value = fmaxf(max_value, row[v]);
  max_value = block_reduce(max_value, partial, true);
  float sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += BLOCK) sum += expf(row[v] - max_value);
  sum = block_reduce(sum, partial, false);
  if (threadIdx.x == 0) row_loss[blockIdx.x] = logf(sum) + max_value - row[target[blockIdx.x]];
}
