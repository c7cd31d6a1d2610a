// @kforge entry: add_rmsnorm_f32
// @kforge about: naive: one block per row, shared-memory tree reduction of the sum of squares
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N,
                                           float eps) {
  __shared__ float partial[BLOCK];
  const float* in = x + (long)blockIdx.x * N;
  float* row = residual + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  float sum = 0.0f;
  for (int n = threadIdx.x; n < N; n += BLOCK) {
    const float r = row[n] + in[n];
    row[n] = r;
    sum += r * r;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float scale = rsqrtf(partial[0] / N + eps);
  // Each thread reads back only the residual elements it wrote itself: no barrier needed.
  for (int n = threadIdx.x; n < N; n += BLOCK) out[n] = row[n] * scale * w[n];
}
