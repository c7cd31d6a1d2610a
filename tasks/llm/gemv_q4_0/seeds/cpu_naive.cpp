// @kforge entry: gemv_q4_0
// @kforge about: naive: one scalar float dot product per output row, unpacking each block's nibbles as it goes
#include <cmath>
#include <cstdint>

struct block_q4_0 {
  uint16_t d;
  uint8_t qs[16];  // element j: low nibble of qs[j]; element j + 16: its high nibble
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

extern "C" void gemv_q4_0(const void* W, const float* x, float* y, int N, int K) {
  const block_q4_0* blocks = static_cast<const block_q4_0*>(W);
  const int per_row = K / 32;
  for (int n = 0; n < N; ++n) {
    float sum = 0.0f;
    for (int b = 0; b < per_row; ++b) {
      const block_q4_0& block = blocks[(long)n * per_row + b];
      const float d = half_to_float(block.d);
      const float* xb = x + b * 32;
      for (int j = 0; j < 16; ++j) {
        sum += ((block.qs[j] & 0x0F) - 8) * d * xb[j];
        sum += ((block.qs[j] >> 4) - 8) * d * xb[j + 16];
      }
    }
    y[n] = sum;
  }
}
