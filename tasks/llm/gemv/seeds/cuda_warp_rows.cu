// @kforge entry: gemv_f32
// @kforge about: one warp per weight row (ROWS rows per block): float4 loads of W and x when K % 4 == 0, UNROLL loads in flight per lane, warp-shuffle sum; no shared memory, no block barrier
// @kforge param: BLOCK=256 in {64,128,256,512}
// @kforge param: ROWS=8 in {2,4,8,16}
// @kforge param: UNROLL=4 in {1,2,4,8}
// @kforge launch: grid=(ceil_div(N, ROWS)) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it). The block's warps
// share its ROWS rows; x (at most a few tens of KiB) is re-read by every warp from L1/L2.
extern "C" __global__ void gemv_f32(const float* W, const float* x, float* y, int N, int K) {
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  const int last = min(N, ((int)blockIdx.x + 1) * ROWS);
  for (int n = blockIdx.x * ROWS + threadIdx.x / KFORGE_WARP_SIZE; n < last; n += warps) {
    const float* w = W + (long)n * K;
    float sum = 0.0f;
    if (K % 4 == 0) {  // every row then starts 16-byte aligned
      const float4* w4 = reinterpret_cast<const float4*>(w);
      const float4* x4 = reinterpret_cast<const float4*>(x);
      // UNROLL independent loads per lane before their sums, to keep enough bytes in flight.
      for (int base = lane; base < K / 4; base += UNROLL * KFORGE_WARP_SIZE) {
        float4 a[UNROLL], b[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int k4 = base + u * KFORGE_WARP_SIZE;
          a[u] = k4 < K / 4 ? w4[k4] : make_float4(0.f, 0.f, 0.f, 0.f);
          b[u] = k4 < K / 4 ? x4[k4] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) sum += a[u].x * b[u].x + a[u].y * b[u].y + a[u].z * b[u].z + a[u].w * b[u].w;
      }
    } else {
      for (int k = lane; k < K; k += KFORGE_WARP_SIZE) sum += w[k] * x[k];
    }
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[n] = sum;
  }
}
