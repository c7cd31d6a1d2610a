// @kforge entry: quantize_q8_0_f32
// @kforge about: naive: one thread per 32-element block: amax, the f16 scale and 32 roundf in a loop (strided, uncoalesced loads)
// @kforge param: BLOCK=128 in {64,128,256,512}
// @kforge launch: grid=(ceil_div(M*(K/32), BLOCK)) block=(BLOCK)

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
  const long b = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (b >= (long)M * (K / 32)) return;
  const float* in = x + b * 32;
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(in[j]));
  const float scale = amax / 127.0f;                      // IEEE division, as ggml
  const float id = scale != 0.0f ? 1.0f / scale : 0.0f;  // from the f32 scale, not the f16
  d[b] = float_to_half(scale);
  for (int j = 0; j < 32; ++j) q[b * 32 + j] = (int)roundf(in[j] * id);  // roundf: ties away from zero
}
