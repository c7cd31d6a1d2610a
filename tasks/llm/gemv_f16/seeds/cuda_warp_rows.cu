// @kforge entry: gemv_f16
// @kforge about: one warp per weight row (ROWS rows per block): 8 halves per 16-byte load when K % 8 == 0, converted in registers, f32 accumulation, warp-shuffle sum
// @kforge param: BLOCK=256 in {64,128,256,512}
// @kforge param: ROWS=8 in {2,4,8,16}
// @kforge param: UNROLL=2 in {1,2,4}
// @kforge launch: grid=(ceil_div(N, ROWS)) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).

// IEEE binary16 bits to float without <cuda_fp16.h> (which hiprtc lacks): the half's fields
// shifted into a float's and rebiased by 2^112, which also normalizes subnormals.
__device__ __forceinline__ float half_to_float(unsigned short h) {
  float magnitude = __int_as_float((h & 0x7FFF) << 13) * 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = __int_as_float(0x7F800000 | ((h & 0x3FF) << 13));
  return (h & 0x8000) ? -magnitude : magnitude;
}

// The two halves packed in a 32-bit word (little endian: the lower one first), times two floats.
__device__ __forceinline__ float dot2(unsigned int halves, float a, float b) {
  return half_to_float(halves & 0xFFFF) * a + half_to_float(halves >> 16) * b;
}

extern "C" __global__ void gemv_f16(const unsigned short* W, const float* x, float* y, int N, int K) {
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  const int last = min(N, ((int)blockIdx.x + 1) * ROWS);
  for (int n = blockIdx.x * ROWS + threadIdx.x / KFORGE_WARP_SIZE; n < last; n += warps) {
    const unsigned short* w = W + (long)n * K;
    float sum = 0.0f;
    if (K % 8 == 0) {  // every row then starts 16-byte aligned: 8 halves per uint4
      const uint4* w8 = reinterpret_cast<const uint4*>(w);
      const float4* x4 = reinterpret_cast<const float4*>(x);
      // UNROLL independent 16-byte loads per lane before their sums, to keep enough bytes in flight.
      for (int base = lane; base < K / 8; base += UNROLL * KFORGE_WARP_SIZE) {
        uint4 h[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int k8 = base + u * KFORGE_WARP_SIZE;
          h[u] = k8 < K / 8 ? w8[k8] : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          const int k8 = base + u * KFORGE_WARP_SIZE;
          if (k8 < K / 8) {
            const float4 a = x4[2 * k8], b = x4[2 * k8 + 1];
            sum += dot2(h[u].x, a.x, a.y) + dot2(h[u].y, a.z, a.w) + dot2(h[u].z, b.x, b.y) + dot2(h[u].w, b.z, b.w);
          }
        }
      }
    } else {
      for (int k = lane; k < K; k += KFORGE_WARP_SIZE) sum += half_to_float(w[k]) * x[k];
    }
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[n] = sum;
  }
}
