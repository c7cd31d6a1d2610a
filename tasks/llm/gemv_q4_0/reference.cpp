// @kforge entry: gemv_q4_0_reference
// @kforge about: the oracle: ggml's dequantize_row_q4_0 ((nibble - 8) * d in f32), dot products in double
#include <cmath>
#include <cstdint>

// ggml's block_q4_0: 32 weights; element j in the low nibble of qs[j], element j + 16 in its
// high nibble; value (nibble - 8) * d.
struct block_q4_0 {
  uint16_t d;  // f16 bits
  uint8_t qs[16];
};
static_assert(sizeof(block_q4_0) == 18, "ggml's layout");

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

extern "C" void gemv_q4_0_reference(const void* W, const float* x, float* y, int N, int K) {
  const block_q4_0* blocks = static_cast<const block_q4_0*>(W);
  const long per_row = K / 32;
  for (long n = 0; n < N; ++n) {
    double sum = 0;
    for (long b = 0; b < per_row; ++b) {
      const block_q4_0& block = blocks[n * per_row + b];
      const float d = half_to_float(block.d);
      float w[32];  // dequantize_row_q4_0
      for (int j = 0; j < 16; ++j) {
        w[j] = ((block.qs[j] & 0x0F) - 8) * d;
        w[j + 16] = ((block.qs[j] >> 4) - 8) * d;
      }
      for (int j = 0; j < 32; ++j) sum += double(w[j]) * x[b * 32 + j];
    }
    y[n] = float(sum);
  }
}
