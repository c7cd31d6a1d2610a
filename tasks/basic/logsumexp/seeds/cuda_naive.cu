// @kforge entry: logsumexp_f32
// @kforge about: naive: one block per row, two passes (max, then the sum of expf) with shared-memory tree reductions
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void logsumexp_f32(const float* x, float* y, int M, int N) {
  __shared__ float partial[BLOCK];
  const float* row = x + (long)blockIdx.x * N;
  float mx = __int_as_float(0xff800000);  // -inf without <cmath>
  for (int n = threadIdx.x; n < N; n += BLOCK) mx = fmaxf(mx, row[n]);
  partial[threadIdx.x] = mx;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + stride]);
    __syncthreads();
  }
  mx = partial[0];
  __syncthreads();  // everyone has read the max before partial is reused
  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) sum += expf(row[n] - mx);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) y[blockIdx.x] = mx + logf(partial[0]);
}
