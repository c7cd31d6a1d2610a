// @kforge entry: gemm_flat_f32
// @kforge about: naive: one block per output element, shared-memory tree reduction of its dot product
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N, M) block=(BLOCK)
extern "C" __global__ void gemm_flat_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  __shared__ float partial[BLOCK];
  const float* a = A + (long)blockIdx.y * K;
  const float* w = W + (long)blockIdx.x * K;
  float sum = 0.0f;
  for (int k = threadIdx.x; k < K; k += BLOCK) sum += a[k] * w[k];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) C[(long)blockIdx.y * N + blockIdx.x] = partial[0];
}
