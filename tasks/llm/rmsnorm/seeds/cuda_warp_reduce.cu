// @kforge entry: rmsnorm_f32
// @kforge about: the row kept in registers (MAX_PER_THREAD float4s per thread) between the two passes; float4 loads when N % 4 == 0; warp shuffles, then one shared-memory step
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: MAX_PER_THREAD=4 in {1,2,4,8}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float4 scaled(float4 v, float4 w, float s) {
  return make_float4(v.x * s * w.x, v.y * s * w.y, v.z * s * w.z, v.w * s * w.w);
}

extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  __shared__ float warp_sums[BLOCK / KFORGE_WARP_SIZE];
  const float* row = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  // With N % 4 == 0 every row starts 16-byte aligned: units are float4s; otherwise single floats
  // carried in the .x of a float4.
  const bool vec = N % 4 == 0;
  const int units = vec ? N / 4 : N;
  auto load = [&](int u) { return vec ? reinterpret_cast<const float4*>(row)[u] : make_float4(row[u], 0.f, 0.f, 0.f); };

  float4 kept[MAX_PER_THREAD];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int u = threadIdx.x + i * BLOCK;
    kept[i] = u < units ? load(u) : make_float4(0.f, 0.f, 0.f, 0.f);
    sum += kept[i].x * kept[i].x + kept[i].y * kept[i].y + kept[i].z * kept[i].z + kept[i].w * kept[i].w;
  }
  // Rows longer than BLOCK * MAX_PER_THREAD units: the rest is read again in pass two.
  for (int u = threadIdx.x + MAX_PER_THREAD * BLOCK; u < units; u += BLOCK) {
    const float4 v = load(u);
    sum += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  sum = warp_sum(sum);
  if (threadIdx.x % KFORGE_WARP_SIZE == 0) warp_sums[threadIdx.x / KFORGE_WARP_SIZE] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < BLOCK / KFORGE_WARP_SIZE; ++i) total += warp_sums[i];
  const float scale = rsqrtf(total / N + eps);

  auto store = [&](int u, float4 v) {
    if (vec)
      reinterpret_cast<float4*>(out)[u] = scaled(v, reinterpret_cast<const float4*>(w)[u], scale);
    else
      out[u] = v.x * scale * w[u];
  };
#pragma unroll
  for (int i = 0; i < MAX_PER_THREAD; ++i) {
    const int u = threadIdx.x + i * BLOCK;
    if (u < units) store(u, kept[i]);
  }
  for (int u = threadIdx.x + MAX_PER_THREAD * BLOCK; u < units; u += BLOCK) store(u, load(u));
}
