// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: one thread too many: writes a float past the end of y
// @kforge launch: grid=(M) block=(256)
// expect: incorrect
// expect-message: the kernel wrote outside 'y'
extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  __shared__ float partial[256];
  const float* row = x + (long)blockIdx.x * N;
  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += 256) sum += row[n] * row[n];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = 128; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float scale = rsqrtf(partial[0] / N + eps);
  for (int n = threadIdx.x; n <= N; n += 256) y[(long)blockIdx.x * N + n] = n < N ? row[n] * scale * w[n] : 0.0f;
}
