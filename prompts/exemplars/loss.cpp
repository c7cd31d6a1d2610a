// Exemplar for the loss category: task basic/cross_entropy.
// loss[0] = mean over rows m of logsumexp(logits[m,:]) - logits[m, target[m]].
// Arguments: logits f32[M,V] in, target i32[M] in, loss f32[1] out, M, V.
// @kforge entry: cross_entropy_f32
// @kforge about: rows across OpenMP threads; SIMD max and a vectorisable polynomial exp for the log-sum-exp; row losses summed in double
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <cmath>
#include <cstdint>
#include <cstring>

// exp(x) for x <= 0 (logits are shifted by the row max): 2^k * p(r), r = x - k ln2 in
// [-ln2/2, ln2/2], degree-6 Taylor polynomial, ~1e-7 relative. Branch-free so `omp simd`
// vectorises it (std::exp does not without -ffast-math).
#pragma omp declare simd
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
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

extern "C" void cross_entropy_f32(const float* logits, const int* target, float* loss, int M, int V) {
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if ((long)M * V >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = logits + (long)m * V;
    float max_value = row[0];
#pragma omp simd reduction(max : max_value)
    for (int v = 0; v < V; ++v) max_value = row[v] > max_value ? row[v] : max_value;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; ++v) sum += exp_nonpositive(row[v] - max_value);
    total += std::log((double)sum) + max_value - row[target[m]];
  }
  loss[0] = (float)(total / M);
}
