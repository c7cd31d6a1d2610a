// @kforge entry: gemv_q4_0
// @kforge about: one warp per weight row (ROWS rows per block), one Q4_0 block per lane per step: the 16 quant bytes read as 8 two-byte words (blocks are only 2-byte aligned), the block's 32 x values as float4s, the scale applied once per block; warp-shuffle sum
// @kforge param: BLOCK=256 in {64,128,256,512}
// @kforge param: ROWS=8 in {2,4,8,16}
// @kforge launch: grid=(ceil_div(N, ROWS)) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).

// IEEE binary16 bits to float without <cuda_fp16.h> (which hiprtc lacks): the half's fields
// shifted into a float's and rebiased by 2^112, which also normalizes subnormals.
__device__ __forceinline__ float half_to_float(unsigned short h) {
  float magnitude = __int_as_float((h & 0x7FFF) << 13) * 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = __int_as_float(0x7F800000 | ((h & 0x3FF) << 13));
  return (h & 0x8000) ? -magnitude : magnitude;
}

// ggml's block_q4_0: an f16 scale d, then 16 bytes; element j (j < 16) is d * ((qs[j] & 15) - 8)
// and element j + 16 is d * ((qs[j] >> 4) - 8); 18 bytes.
constexpr int kBlockBytes = 18;

extern "C" __global__ void gemv_q4_0(const void* W, const float* x, float* y, int N, int K) {
  const int warps = BLOCK / KFORGE_WARP_SIZE, lane = threadIdx.x % KFORGE_WARP_SIZE;
  const int blocks = K / 32, last = min(N, ((int)blockIdx.x + 1) * ROWS);
  for (int n = blockIdx.x * ROWS + threadIdx.x / KFORGE_WARP_SIZE; n < last; n += warps) {
    const unsigned char* row = static_cast<const unsigned char*>(W) + (long)n * blocks * kBlockBytes;
    float sum = 0.0f;
    for (int b = lane; b < blocks; b += KFORGE_WARP_SIZE) {
      const unsigned short* words = reinterpret_cast<const unsigned short*>(row + (long)b * kBlockBytes);
      const float4* xs = reinterpret_cast<const float4*>(x + b * 32);  // 128-byte aligned
      float block_sum = 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // bytes 4i..4i+3: elements 4i..4i+3 (low nibbles), 4i+16..4i+19 (high)
        const unsigned int q = words[1 + 2 * i] | ((unsigned int)words[2 + 2 * i] << 16);
        const float4 low = xs[i], high = xs[i + 4];
        block_sum += ((int)(q & 15) - 8) * low.x + ((int)((q >> 8) & 15) - 8) * low.y +
                     ((int)((q >> 16) & 15) - 8) * low.z + ((int)((q >> 24) & 15) - 8) * low.w;
        block_sum += ((int)((q >> 4) & 15) - 8) * high.x + ((int)((q >> 12) & 15) - 8) * high.y +
                     ((int)((q >> 20) & 15) - 8) * high.z + ((int)((q >> 28) & 15) - 8) * high.w;
      }
      sum += half_to_float(words[0]) * block_sum;
    }
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[n] = sum;
  }
}
