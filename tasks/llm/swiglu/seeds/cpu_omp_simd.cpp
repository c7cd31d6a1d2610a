// @kforge entry: swiglu_f32
// @kforge about: vectorisable polynomial exp, elements across OpenMP threads in contiguous chunks
// @kforge param: PAR_THRESHOLD=4194304 in {16384,65536,262144,1048576,4194304}
#include <cstdint>
#include <cstring>

// exp(x) for any f32 x, clamped to [-87, 88] (silu needs no more): 2^k * p(r), r = x - k ln2 in
// [-ln2/2, ln2/2], degree-6 Taylor polynomial, ~1e-7 relative. Branch-free so `omp simd`
// vectorises it (std::exp does not without -ffast-math).
#pragma omp declare simd
static inline float exp_clamped(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by adding and removing 1.5 * 2^23: roundf() would not vectorise.
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // k reaches 127 at x = 88: build 2^k as two factors so the exponent field never overflows.
  const std::int32_t half = static_cast<std::int32_t>(k) / 2;
  const std::int32_t bits_a = (half + 127) << 23, bits_b = (static_cast<std::int32_t>(k) - half + 127) << 23;
  float a, b;
  std::memcpy(&a, &bits_a, sizeof a);
  std::memcpy(&b, &bits_b, sizeof b);
  return p * a * b;
}

extern "C" void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  const long total = (long)M * N;
  // A plain SIMD loop below the threshold: even `omp parallel if (false)` costs microseconds.
  if (total < PAR_THRESHOLD) {
#pragma omp simd
    for (long i = 0; i < total; ++i) y[i] = gate[i] / (1.0f + exp_clamped(-gate[i])) * up[i];
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (long i = 0; i < total; ++i) y[i] = gate[i] / (1.0f + exp_clamped(-gate[i])) * up[i];
}
