// @kforge entry: softmax_f32
// @kforge about: rows across OpenMP threads, vectorisable polynomial exp, SIMD max/sum passes
// @kforge param: PAR_THRESHOLD=65536 in {4096,16384,65536,262144,1048576}
#include <cmath>
#include <cstdint>
#include <cstring>

// exp(x) for x <= 0 (inputs are shifted by the row max): 2^k * p(r) with r = x - k ln2 in
// [-ln2/2, ln2/2] and a degree-6 Taylor polynomial; relative error ~1e-7. Written branch-free so
// that `omp simd` vectorises it (std::exp does not vectorise without -ffast-math).
#pragma omp declare simd
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  // Round to nearest by adding and removing 1.5 * 2^23 (the f32 mantissa drops the fraction):
  // roundf() does not vectorise and would cost a library call per element.
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

extern "C" void softmax_f32(const float* x, float* y, int M, int N) {
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    float* __restrict out = y + (long)m * N;
    float max_value = row[0];
#pragma omp simd reduction(max : max_value)
    for (int n = 0; n < N; ++n) max_value = row[n] > max_value ? row[n] : max_value;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int n = 0; n < N; ++n) {
      out[n] = exp_nonpositive(row[n] - max_value);
      sum += out[n];
    }
    const float inverse = 1.0f / sum;
#pragma omp simd
    for (int n = 0; n < N; ++n) out[n] *= inverse;
  }
}
