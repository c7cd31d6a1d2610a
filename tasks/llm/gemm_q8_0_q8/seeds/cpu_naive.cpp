// @kforge entry: gemm_q8_0_q8
// @kforge about: naive: each row of A quantized to Q8_0 per block (scalar), then per output element one scalar integer dot per block, scaled by d_w * d_a and summed in float
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

extern "C" void gemm_q8_0_q8(const float* A, const void* W, float* C, int M, int N, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const int per_row = K / 32;
  std::vector<block_q8_0> aq((long)M * per_row);  // A as Q8_0, ggml's quantize_row_q8_0_ref per row
  for (long i = 0; i < (long)M * per_row; ++i) {
    const float* a = A + i * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(a[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) aq[i].qs[j] = int8_t(std::roundf(a[j] * id));
    aq[i].d = float_to_half(d);
  }
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float sum = 0.0f;
      for (int b = 0; b < per_row; ++b) {
        const block_q8_0& w = blocks[(long)n * per_row + b];
        const block_q8_0& a = aq[(long)m * per_row + b];
        int dot = 0;
        for (int j = 0; j < 32; ++j) dot += w.qs[j] * a.qs[j];
        sum += half_to_float(w.d) * half_to_float(a.d) * float(dot);
      }
      C[(long)m * N + n] = sum;
    }
}
