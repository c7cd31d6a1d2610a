// @kforge entry: dequantize_q8_0_f32
// @kforge about: naive: block by block, the scale converted with ldexp, one element at a time
#include <cmath>
#include <cstdint>

struct block_q8_0 {
  uint16_t d;
  int8_t qs[32];
};

static float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(float(mantissa), -24);
  else if (exponent == 31)
    magnitude = mantissa ? NAN : INFINITY;
  else
    magnitude = std::ldexp(float(1024 + mantissa), exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

extern "C" void dequantize_q8_0_f32(const void* W, float* y, int M, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  for (long b = 0; b < (long)M * K / 32; ++b) {
    const float d = half_to_float(blocks[b].d);
    for (int j = 0; j < 32; ++j) y[b * 32 + j] = blocks[b].qs[j] * d;
  }
}
