// @kforge entry: gemv_q8_0_q8_reference
// @kforge about: the oracle: x quantized per block as ggml's quantize_row_q8_0_ref (f32 operations), integer block dots, scales and sum in double
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// ggml's block_q8_0: 32 weights, value qs[j] * d.
struct block_q8_0 {
  uint16_t d;  // f16 bits
  int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34, "ggml's layout");

static double half_to_double(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(double(mantissa), -24);
  else if (exponent == 31)
    magnitude = mantissa ? NAN : INFINITY;
  else
    magnitude = std::ldexp(double(1024 + mantissa), exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

// f32 to f16 bits, rounded to nearest with ties to even (F16C's and ggml's GGML_FP32_TO_FP16).
static uint16_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return sign | 0x7E00;             // NaN
  if (a >= 0x477FF000) return sign | 0x7C00;            // >= 65520 rounds to infinity
  if (a < 0x38800000)                                   // below 2^-14: an f16 subnormal
    return sign | uint16_t(std::nearbyint(std::fabs(f) * 0x1p24f));  // exact scaling, then ties to even
  a += 0xFFF + ((a >> 13) & 1);                         // round the 13 dropped bits, ties to even
  return sign | uint16_t((a - 0x38000000) >> 13);       // rebias 127 -> 15
}

extern "C" void gemv_q8_0_q8_reference(const void* W, const float* x, float* y, int N, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const long per_row = K / 32;
  // quantize_row_q8_0_ref, f32 operations exactly as the task states
  std::vector<int> qx(K);
  std::vector<double> dx(per_row);
  for (long b = 0; b < per_row; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float scaled = x[b * 32 + j] * id;
      qx[b * 32 + j] = int(std::roundf(scaled));
    }
    dx[b] = half_to_double(float_to_half(d));
  }
  for (long n = 0; n < N; ++n) {
    double sum = 0;
    for (long b = 0; b < per_row; ++b) {
      const block_q8_0& block = blocks[n * per_row + b];
      long dot = 0;
      for (int j = 0; j < 32; ++j) dot += long(block.qs[j]) * qx[b * 32 + j];
      sum += half_to_double(block.d) * dx[b] * double(dot);  // exact: 11 + 11 + 19 bits
    }
    y[n] = float(sum);
  }
}
