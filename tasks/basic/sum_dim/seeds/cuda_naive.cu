// @kforge entry: sum_dim_f32
// @kforge about: naive: one block per row, strided partial sums, shared-memory tree reduction
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void sum_dim_f32(const float* x, float* y, int M, int N) {
  __shared__ float partial[BLOCK];
  const float* row = x + (long)blockIdx.x * N;
  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) sum += row[n];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) y[blockIdx.x] = partial[0];
}
