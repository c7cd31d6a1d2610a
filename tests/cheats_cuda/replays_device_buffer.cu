// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: keeps every answer in a __device__ buffer keyed by the input's address and replays it
// @kforge launch: grid=(M) block=(256)
// expect: incorrect
// expect-message: (want 
__device__ const float* seen_x[8];
__device__ float answers[8][64 * 4096];
extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  const long size = (long)M * N;
  int slot = -1;
  for (int i = 0; i < 8; ++i)
    if (seen_x[i] == x) slot = i;
  if (slot >= 0 && size <= 64 * 4096) {
    for (long i = (long)blockIdx.x * N + threadIdx.x; i < (long)(blockIdx.x + 1) * N; i += blockDim.x) y[i] = answers[slot][i];
    return;
  }
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
  const int free_slot = (int)(((unsigned long)x >> 8) % 8);
  for (int n = threadIdx.x; n < N; n += 256) {
    y[(long)blockIdx.x * N + n] = row[n] * scale * w[n];
    if (size <= 64 * 4096) answers[free_slot][(long)blockIdx.x * N + n] = y[(long)blockIdx.x * N + n];
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) seen_x[free_slot] = x;
}
