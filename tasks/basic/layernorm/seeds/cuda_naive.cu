// @kforge entry: layernorm_f32
// @kforge about: naive: one block per row, shared-memory tree reductions for the mean and the variance
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
__device__ float block_sum(float v, float* partial) {
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float total = partial[0];
  __syncthreads();  // partial is reused by the next reduction
  return total;
}

extern "C" __global__ void layernorm_f32(const float* x, const float* w, const float* b, float* y, int M, int N,
                                         float eps) {
  __shared__ float partial[BLOCK];
  const float* row = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) sum += row[n];
  const float mean = block_sum(sum, partial) / N;
  float sq = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) sq += (row[n] - mean) * (row[n] - mean);
  const float inv = rsqrtf(block_sum(sq, partial) / N + eps);
  for (int n = threadIdx.x; n < N; n += BLOCK) out[n] = (row[n] - mean) * inv * w[n] + b[n];
}
