// @kforge entry: quantize_q8_0_reference
// @kforge about: the oracle: ggml's quantize_row_q8_0_ref, step by step, with the f16 scale rounded to nearest even
#include <cmath>
#include <cstdint>
#include <cstring>

// The binary16 nearest to f (ties to even), for finite f >= 0 up to 65504 and any sign.
static uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = (bits >> 16) & 0x8000;
  const float a = std::fabs(f);
  if (a >= 65520.0f) return sign | 0x7C00;  // rounds to infinity
  if (a < 0x1p-14f) return sign | uint16_t(std::nearbyint(a * 0x1p24f));  // subnormal: units of 2^-24
  const int exponent = std::ilogb(a);                                      // -14 .. 15
  const double mantissa = std::nearbyint(std::ldexp(double(a), 10 - exponent));  // 1024 .. 2048
  return sign | uint16_t(((exponent + 15) << 10) + (long(mantissa) - 1024));     // 2048 carries into the exponent
}

extern "C" void quantize_q8_0_reference(const float* x, uint16_t* d, int* q, int M, int K) {
  for (long b = 0; b < long(M) * K / 32; ++b) {
    const float* in = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(in[j]));
    const float scale = amax / 127;
    const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
    d[b] = float_to_half(scale);
    for (int j = 0; j < 32; ++j) q[b * 32 + j] = int(std::roundf(in[j] * id));
  }
}
