// @kforge entry: mse_loss_f32
// @kforge about: naive: grid-stride partial sums, a shared-memory tree per block into the workspace, then a one-block sum
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: BLOCKS=512 in {128,256,512,1024}
// @kforge workspace: 4*BLOCKS
// @kforge launch: grid=(BLOCKS, 1, 1) block=(BLOCK)
// @kforge launch: grid=(1, 1, 2) block=(BLOCK)
// Launch 1 (gridDim.z == 1): block b writes its partial sum to workspace[b]. Launch 2 (gridDim.z
// == 2): one block adds the BLOCKS partials in a fixed order, so the result is deterministic.
__device__ float block_sum(float v, float* partial) {
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  return partial[0];
}

extern "C" __global__ void mse_loss_f32(const float* pred, const float* target, float* loss, int N, void* workspace) {
  __shared__ float partial[BLOCK];
  float* block_partials = static_cast<float*>(workspace);
  if (gridDim.z == 2) {
    float sum = 0.0f;
    for (int b = threadIdx.x; b < BLOCKS; b += BLOCK) sum += block_partials[b];
    sum = block_sum(sum, partial);
    if (threadIdx.x == 0) loss[0] = sum / N;
    return;
  }
  float sum = 0.0f;
  for (long i = (long)blockIdx.x * BLOCK + threadIdx.x; i < N; i += (long)BLOCKS * BLOCK) {
    const float d = pred[i] - target[i];
    sum += d * d;
  }
  sum = block_sum(sum, partial);
  if (threadIdx.x == 0) block_partials[blockIdx.x] = sum;
}
