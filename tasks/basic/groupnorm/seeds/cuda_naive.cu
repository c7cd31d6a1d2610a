// @kforge entry: groupnorm_f32
// @kforge about: naive: one block per (sample, group), shared-memory tree reductions for the mean and the variance
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(N*G) block=(BLOCK)
__device__ float block_sum(float v, float* partial) {
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float total = partial[0];
  __syncthreads();
  return total;
}

extern "C" __global__ void groupnorm_f32(const float* x, const float* gamma, const float* beta, float* y, int N, int C,
                                         int HW, int G, float eps) {
  __shared__ float partial[BLOCK];
  const int channels = C / G;
  const long per_group = (long)channels * HW;
  const long start = (long)blockIdx.x * per_group;  // groups are contiguous: [N, G, C/G, HW]
  const int c0 = (blockIdx.x % G) * channels;
  float sum = 0.0f;
  for (long i = threadIdx.x; i < per_group; i += BLOCK) sum += x[start + i];
  const float mean = block_sum(sum, partial) / per_group;
  float sq = 0.0f;
  for (long i = threadIdx.x; i < per_group; i += BLOCK) {
    const float d = x[start + i] - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(block_sum(sq, partial) / per_group + eps);
  for (long i = threadIdx.x; i < per_group; i += BLOCK) {
    const int c = c0 + (int)(i / HW);
    y[start + i] = (x[start + i] - mean) * inv * gamma[c] + beta[c];
  }
}
