// @kforge entry: gemv_f32
// @kforge about: naive: one block per output row, shared-memory tree reduction of the dot product
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N) block=(BLOCK)
extern "C" __global__ void gemv_f32(const float* W, const float* x, float* y, int N, int K) {
  __shared__ float partial[BLOCK];
  const float* row = W + (long)blockIdx.x * K;
  float sum = 0.0f;
  for (int k = threadIdx.x; k < K; k += BLOCK) sum += row[k] * x[k];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) y[blockIdx.x] = partial[0];
}
