// @kforge entry: gemv_swiglu_f32
// @kforge about: naive: one block per output row, both dot products reduced in shared memory, then silu(g) * u by thread 0
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N) block=(BLOCK)
extern "C" __global__ void gemv_swiglu_f32(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  __shared__ float partial_g[BLOCK], partial_u[BLOCK];
  const float* row1 = W1 + (long)blockIdx.x * K;
  const float* row3 = W3 + (long)blockIdx.x * K;
  float g = 0.0f, u = 0.0f;
  for (int k = threadIdx.x; k < K; k += BLOCK) {
    g += row1[k] * x[k];
    u += row3[k] * x[k];
  }
  partial_g[threadIdx.x] = g;
  partial_u[threadIdx.x] = u;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      partial_g[threadIdx.x] += partial_g[threadIdx.x + stride];
      partial_u[threadIdx.x] += partial_u[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float gate = partial_g[0];
    y[blockIdx.x] = gate / (1.0f + expf(-gate)) * partial_u[0];
  }
}
