// @kforge entry: add_rmsnorm_f32
// @kforge about: the row's sums kept in registers (up to MAX_PER_THREAD per thread) between passes; warp shuffles, then one shared-memory step
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: MAX_PER_THREAD=16 in {4,8,16,32}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).
extern "C" __global__ void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N,
                                           float eps) {
  __shared__ float warp_sums[BLOCK / KFORGE_WARP_SIZE];
  const float* in = x + (long)blockIdx.x * N;
  float* row = residual + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  float kept[MAX_PER_THREAD];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int n = threadIdx.x + i * BLOCK;
    kept[i] = 0.0f;
    if (n < N) {
      kept[i] = row[n] + in[n];
      row[n] = kept[i];
      sum += kept[i] * kept[i];
    }
  }
  // Rows longer than BLOCK * MAX_PER_THREAD: the rest is re-read from the residual in pass two.
  for (int n = threadIdx.x + MAX_PER_THREAD * BLOCK; n < N; n += BLOCK) {
    const float r = row[n] + in[n];
    row[n] = r;
    sum += r * r;
  }
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < BLOCK / KFORGE_WARP_SIZE; ++i) total += warp_sums[i];
  const float scale = rsqrtf(total / N + eps);
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int n = threadIdx.x + i * BLOCK;
    if (n < N) out[n] = kept[i] * scale * w[n];
  }
  for (int n = threadIdx.x + MAX_PER_THREAD * BLOCK; n < N; n += BLOCK) out[n] = row[n] * scale * w[n];
}
