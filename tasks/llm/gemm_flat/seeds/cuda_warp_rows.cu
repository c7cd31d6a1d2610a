// @kforge entry: gemm_flat_f32
// @kforge about: one warp per weight row and MT tokens at once: each W element is loaded once (float4 when K % 4 == 0) for MT tokens; warp-shuffle sums
// @kforge param: BLOCK=256 in {128,256,512}
// @kforge param: ROWS=16 in {8,16,32}
// @kforge param: MT=8 in {2,4,8,16}
// @kforge launch: grid=(ceil_div(N, ROWS), ceil_div(M, MT)) block=(BLOCK)
// The block's BLOCK / KFORGE_WARP_SIZE warps share its ROWS weight rows; A (at most 64 x K) stays
// in L2, so it is read from global memory without staging.
extern "C" __global__ void gemm_flat_f32(const float* A, const float* W, float* C, int M, int N, int K) {
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  const int m0 = blockIdx.y * MT;
  const int tokens = min(MT, M - m0);
  const float* a = A + (long)m0 * K;
  for (int n = blockIdx.x * ROWS + threadIdx.x / KFORGE_WARP_SIZE; n < min(N, (blockIdx.x + 1) * ROWS); n += warps) {
    const float* w = W + (long)n * K;
    float acc[MT];
#pragma unroll
    for (int t = 0; t < MT; ++t) acc[t] = 0.0f;
    if (K % 4 == 0) {
      const float4* w4 = reinterpret_cast<const float4*>(w);
      for (int k4 = lane; k4 < K / 4; k4 += KFORGE_WARP_SIZE) {
        const float4 wv = w4[k4];
#pragma unroll
        for (int t = 0; t < MT; ++t)
          if (t < tokens) {
            const float4 av = reinterpret_cast<const float4*>(a + (long)t * K)[k4];
            acc[t] += av.x * wv.x + av.y * wv.y + av.z * wv.z + av.w * wv.w;
          }
      }
    } else {
      for (int k = lane; k < K; k += KFORGE_WARP_SIZE) {
        const float wv = w[k];
#pragma unroll
        for (int t = 0; t < MT; ++t)
          if (t < tokens) acc[t] += a[(long)t * K + k] * wv;
      }
    }
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      float sum = acc[t];
      for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      if (lane == 0 && t < tokens) C[(long)(m0 + t) * N + n] = sum;
    }
  }
}
