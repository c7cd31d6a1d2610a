// @kforge entry: gemv_q4_0
// @kforge about: wrong: reads byte j of a Q4_0 block as elements 2j (low nibble) and 2j + 1 (high), not j and j + 16
#include <cstdint>
#include <cstring>

struct block_q4_0 {
  uint16_t d;
  uint8_t qs[16];
};

static float half_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h & 0x7FFF) << 13;
  float magnitude;
  std::memcpy(&magnitude, &bits, 4);
  magnitude *= 0x1p112f;
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
      for (int j = 0; j < 16; ++j) {
        sum += ((block.qs[j] & 0x0F) - 8) * d * x[b * 32 + 2 * j];
        sum += ((block.qs[j] >> 4) - 8) * d * x[b * 32 + 2 * j + 1];
      }
    }
    y[n] = sum;
  }
}
