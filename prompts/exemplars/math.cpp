// Exemplar (math): a kernel for task basic/logsumexp, from its seed seeds/cpu_omp_simd.cpp.
// Semantics: y[m] = log(sum_n exp(x[m,n])), computed as max + log(sum exp(x - max)).
// Arguments: x f32[M,N] in, y f32[M] out, M, N
// @kforge entry: logsumexp_f32
// @kforge about: SIMD max pass and a vectorisable polynomial exp in a SIMD sum pass; rows across OpenMP threads, and a long row's two passes split across threads when rows are fewer than threads
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
#include <cmath>
#include <cstdint>
#include <cstring>
#include <omp.h>

// exp(x) for x <= 0 (here x - max), clamped at -87: 2^k * p(r), r = x - k ln2 in [-ln2/2, ln2/2],
// degree-6 Taylor polynomial, ~1e-7 relative. Branch-free so `omp simd` vectorises it.
#pragma omp declare simd
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest via 1.5 * 2^23
  const float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;  // k >= -126: a normal 2^k
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float row_max(const float* __restrict row, long count) {
  float mx = row[0];
#pragma omp simd reduction(max : mx)
  for (long n = 0; n < count; ++n) mx = row[n] > mx ? row[n] : mx;
  return mx;
}

static inline float row_sum_exp(const float* __restrict row, long count, float mx) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (long n = 0; n < count; ++n) sum += exp_nonpositive(row[n] - mx);
  return sum;
}

extern "C" void logsumexp_f32(const float* x, float* y, int M, int N) {
  const bool parallel = (long)M * N >= PAR_THRESHOLD;
  if (!parallel || M >= omp_get_max_threads()) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int m = 0; m < M; ++m) {
      const float* row = x + (long)m * N;
      const float mx = row_max(row, N);
      y[m] = mx + std::log(row_sum_exp(row, N, mx));
    }
    return;
  }
  // Fewer rows than threads: every thread takes a slice of each row for both passes.
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float mx = row[0], sum = 0.0f;
#pragma omp parallel reduction(max : mx)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const long begin = (long)N * t / T, end = (long)N * (t + 1) / T;
      if (end > begin) mx = row_max(row + begin, end - begin);
    }
#pragma omp parallel reduction(+ : sum)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const long begin = (long)N * t / T, end = (long)N * (t + 1) / T;
      sum = row_sum_exp(row + begin, end - begin, mx);
    }
    y[m] = mx + std::log(sum);
  }
}
