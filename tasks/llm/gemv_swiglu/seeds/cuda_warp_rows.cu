// @kforge entry: gemv_swiglu_f32
// @kforge about: one warp per output row pair (row n of W1 and of W3, ROWS pairs per block): float4 loads when K % 4 == 0, each load of x serving both rows, UNROLL loads of each in flight per lane, two warp-shuffle sums, silu(g) * u by lane 0
// @kforge param: BLOCK=256 in {64,128,256,512}
// @kforge param: ROWS=8 in {2,4,8,16}
// @kforge param: UNROLL=4 in {1,2,4,8}
// @kforge launch: grid=(ceil_div(N, ROWS)) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it). The block's warps
// share its ROWS row pairs; x (at most a few tens of KiB) is re-read by every warp from L1/L2.
// Unfused, this is two gemv launches and a swiglu launch, with g and u written and read back.
extern "C" __global__ void gemv_swiglu_f32(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  const int last = min(N, ((int)blockIdx.x + 1) * ROWS);
  for (int n = blockIdx.x * ROWS + threadIdx.x / KFORGE_WARP_SIZE; n < last; n += warps) {
    const float* w1 = W1 + (long)n * K;
    const float* w3 = W3 + (long)n * K;
    float g = 0.0f, u = 0.0f;
    if (K % 4 == 0) {  // every row then starts 16-byte aligned
      const float4* a4 = reinterpret_cast<const float4*>(w1);
      const float4* b4 = reinterpret_cast<const float4*>(w3);
      const float4* x4 = reinterpret_cast<const float4*>(x);
      // UNROLL independent loads of each matrix per lane before their sums, to keep enough
      // bytes in flight (twice gemv's per unroll step: two weight rows per warp).
      for (int base = lane; base < K / 4; base += UNROLL * KFORGE_WARP_SIZE) {
        float4 a[UNROLL], b[UNROLL], c[UNROLL];
#pragma unroll
        for (int j = 0; j < UNROLL; ++j) {
          const int k4 = base + j * KFORGE_WARP_SIZE;
          const bool in = k4 < K / 4;
          a[j] = in ? a4[k4] : make_float4(0.f, 0.f, 0.f, 0.f);
          b[j] = in ? b4[k4] : make_float4(0.f, 0.f, 0.f, 0.f);
          c[j] = in ? x4[k4] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int j = 0; j < UNROLL; ++j) {
          g += a[j].x * c[j].x + a[j].y * c[j].y + a[j].z * c[j].z + a[j].w * c[j].w;
          u += b[j].x * c[j].x + b[j].y * c[j].y + b[j].z * c[j].z + b[j].w * c[j].w;
        }
      }
    } else {
      for (int k = lane; k < K; k += KFORGE_WARP_SIZE) {
        const float xk = x[k];
        g += w1[k] * xk;
        u += w3[k] * xk;
      }
    }
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) {
      g += __shfl_xor_sync(0xffffffffu, g, offset);
      u += __shfl_xor_sync(0xffffffffu, u, offset);
    }
    // Only N of these: the accurate expf costs nothing next to the 2K loads per row.
    if (lane == 0) y[n] = g / (1.0f + expf(-g)) * u;
  }
}
