// @kforge entry: gemv_f16_reference
// @kforge about: the oracle: each half converted exactly (subnormals included), dot products in double
#include <cmath>
#include <cstdint>

// IEEE binary16 bits to float, exactly: sign, 5-bit exponent (bias 15), 10-bit mantissa.
static float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(float(mantissa), -24);  // zero or subnormal
  else if (exponent == 31)
    magnitude = mantissa ? NAN : INFINITY;
  else
    magnitude = std::ldexp(float(1024 + mantissa), exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

extern "C" void gemv_f16_reference(const uint16_t* W, const float* x, float* y, int N, int K) {
  for (long n = 0; n < N; ++n) {
    double sum = 0;
    for (long k = 0; k < K; ++k) sum += double(half_to_float(W[n * K + k])) * x[k];
    y[n] = float(sum);
  }
}
