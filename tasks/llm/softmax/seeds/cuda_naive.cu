// @kforge entry: softmax_f32
// @kforge about: naive: one block per row, shared-memory tree reductions for the max and the sum
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void softmax_f32(const float* x, float* y, int M, int N) {
  __shared__ float partial[BLOCK];
  const float* row = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;

  float max_value = __int_as_float(0xff800000);  // -infinity, without <cmath>
  for (int n = threadIdx.x; n < N; n += BLOCK) max_value = fmaxf(max_value, row[n]);
  partial[threadIdx.x] = max_value;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + stride]);
    __syncthreads();
  }
  max_value = partial[0];
  __syncthreads();

  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) sum += expf(row[n] - max_value);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inverse = 1.0f / partial[0];
  for (int n = threadIdx.x; n < N; n += BLOCK) out[n] = expf(row[n] - max_value) * inverse;
}
