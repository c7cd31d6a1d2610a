// @kforge entry: gemv_f16
// @kforge about: naive: one scalar float dot product per output row, each half converted in plain C++
#include <cmath>
#include <cstdint>
#include <cstring>

// IEEE binary16 bits to float, exactly: the half's exponent and mantissa shifted into a float's
// fields, then rebiased (15 to 127) by a multiplication by 2^112, which also normalizes
// subnormals; infinities and NaN keep an all-ones exponent.
static float half_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h & 0x7FFF) << 13;
  float magnitude;
  std::memcpy(&magnitude, &bits, 4);
  magnitude *= 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = (h & 0x3FF) ? NAN : INFINITY;
  return (h & 0x8000) ? -magnitude : magnitude;
}

extern "C" void gemv_f16(const uint16_t* W, const float* x, float* y, int N, int K) {
  for (int n = 0; n < N; ++n) {
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += half_to_float(W[(long)n * K + k]) * x[k];
    y[n] = sum;
  }
}
