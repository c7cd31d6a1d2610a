// @kforge entry: gelu_f32
// @kforge about: 0.5 x (1 + tanh u) rewritten as x / (1 + exp(-2u)); vectorisable polynomial exp; chunks across OpenMP threads
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <cstdint>
#include <cstring>

// exp(x) for any f32 x, clamped to [-87, 88]: 2^k * p(r), r = x - k ln2 in [-ln2/2, ln2/2],
// degree-6 Taylor polynomial, ~1e-7 relative. Branch-free so `omp simd` vectorises it.
#pragma omp declare simd
static inline float exp_clamped(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^k as two factors so that k = 127 does not overflow the exponent field.
  const std::int32_t half = static_cast<std::int32_t>(k) / 2;
  const std::int32_t bits_a = (half + 127) << 23, bits_b = (static_cast<std::int32_t>(k) - half + 127) << 23;
  float a, b;
  std::memcpy(&a, &bits_a, sizeof a);
  std::memcpy(&b, &bits_b, sizeof b);
  return p * a * b;
}

// 0.5 * (1 + tanh(u)) = 1 / (1 + exp(-2u)): one exponential and one division per element.
#pragma omp declare simd
static inline float gelu_one(float v) {
  const float u = 0.7978845608f * (v + 0.044715f * v * v * v);
  return v / (1.0f + exp_clamped(-2.0f * u));
}

extern "C" void gelu_f32(const float* x, float* y, int M, int N) {
  const long total = (long)M * N;
  if (total < PAR_THRESHOLD) {  // a thread team costs microseconds: not worth it for one token
#pragma omp simd
    for (long i = 0; i < total; ++i) y[i] = gelu_one(x[i]);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (long i = 0; i < total; ++i) y[i] = gelu_one(x[i]);
}
