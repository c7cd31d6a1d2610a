// @kforge entry: quantize_q8_0_f32
// @kforge about: naive: block by block as ggml's reference quantizer, roundf per element, the scale rounded to f16 by bit manipulation
#include <cmath>
#include <cstdint>
#include <cstring>

// The binary16 nearest to f (ties to even); f is finite and below 65520 here.
static uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t sign = (bits >> 16) & 0x8000, magnitude = bits & 0x7FFFFFFF;
  if (magnitude < 0x38800000) {  // below 2^-14: a subnormal half, in units of 2^-24
    float a;
    std::memcpy(&a, &magnitude, sizeof a);
    return sign | (uint16_t)std::nearbyint(a * 0x1p24f);
  }
  const uint32_t rebiased = magnitude - 0x38000000;  // exponent bias 127 -> 15
  return sign | (uint16_t)((rebiased + 0xFFF + ((rebiased >> 13) & 1)) >> 13);  // round the low 13 bits to even
}

extern "C" void quantize_q8_0_f32(const float* x, uint16_t* d, int* q, int M, int K) {
  for (long b = 0; b < (long)M * K / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
    const float scale = amax / 127;
    const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
    d[b] = float_to_half(scale);
    for (int j = 0; j < 32; ++j) q[b * 32 + j] = (int)std::roundf(x[b * 32 + j] * id);
  }
}
