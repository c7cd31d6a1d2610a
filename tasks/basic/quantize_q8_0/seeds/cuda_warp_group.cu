// @kforge entry: quantize_q8_0_f32
// @kforge about: one thread per element, each 32-lane group one ggml block: amax by xor shuffles within the group (coalesced loads and stores), lane 0 writes the f16 scale
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*K, BLOCK)) block=(BLOCK)

// The binary16 nearest to f (ties to even), without <cuda_fp16.h> (which hiprtc lacks); f is
// finite and below 65520 here.
__device__ unsigned short float_to_half(float f) {
  const unsigned int bits = __float_as_uint(f);
  const unsigned int sign = (bits >> 16) & 0x8000, magnitude = bits & 0x7FFFFFFF;
  if (magnitude < 0x38800000)  // below 2^-14: a subnormal half, in units of 2^-24
    return sign | (unsigned short)rintf(__uint_as_float(magnitude) * 0x1p24f);
  const unsigned int rebiased = magnitude - 0x38000000;  // exponent bias 127 -> 15
  return sign | (unsigned short)((rebiased + 0xFFF + ((rebiased >> 13) & 1)) >> 13);
}

extern "C" __global__ void quantize_q8_0_f32(const float* x, unsigned short* d, int* q, int M, int K) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  // M * K is a multiple of 32 and BLOCK of 32, so a 32-lane group is wholly in or out of range.
  // No early return: every lane of the warp must reach the shuffles.
  const bool active = i < (long)M * K;
  const float v = active ? x[i] : 0.0f;
  // xor offsets below 32 stay inside an aligned 32-lane group, on 32- and 64-wide warps alike.
  float amax = fabsf(v);
  for (int offset = 16; offset > 0; offset /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float scale = amax / 127.0f;                      // IEEE division, as ggml's reference
  const float id = scale != 0.0f ? 1.0f / scale : 0.0f;  // from the f32 scale, not the f16
  if (!active) return;
  q[i] = (int)roundf(v * id);  // roundf: ties away from zero, as ggml (rintf would round to even)
  if ((threadIdx.x & 31) == 0) d[i / 32] = float_to_half(scale);
}
