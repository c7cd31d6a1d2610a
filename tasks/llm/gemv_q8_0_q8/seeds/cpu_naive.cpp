// @kforge entry: gemv_q8_0_q8
// @kforge about: naive: x quantized to Q8_0 per block (scalar), then per output row one scalar integer dot per block, scaled by d_w * d_x and summed in float
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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

// f32 to f16 bits, to nearest with ties to even.
static uint16_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return sign | 0x7E00;
  if (a >= 0x477FF000) return sign | 0x7C00;
  if (a < 0x38800000) return sign | uint16_t(std::nearbyint(std::fabs(f) * 0x1p24f));
  a += 0xFFF + ((a >> 13) & 1);
  return sign | uint16_t((a - 0x38000000) >> 13);
}

extern "C" void gemv_q8_0_q8(const void* W, const float* x, float* y, int N, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const int per_row = K / 32;
  std::vector<block_q8_0> xq(per_row);  // x as Q8_0, ggml's quantize_row_q8_0_ref
  for (int b = 0; b < per_row; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) xq[b].qs[j] = int8_t(std::roundf(x[b * 32 + j] * id));
    xq[b].d = float_to_half(d);
  }
  for (int n = 0; n < N; ++n) {
    float sum = 0.0f;
    for (int b = 0; b < per_row; ++b) {
      const block_q8_0& block = blocks[(long)n * per_row + b];
      int dot = 0;
      for (int j = 0; j < 32; ++j) dot += block.qs[j] * xq[b].qs[j];
      sum += half_to_float(block.d) * half_to_float(xq[b].d) * float(dot);
    }
    y[n] = sum;
  }
}
