// @kforge entry: layernorm_f32
// @kforge about: rows across OpenMP threads; SIMD reductions for the mean and the centred variance, one fused normalize pass
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <cmath>

extern "C" void layernorm_f32(const float* x, const float* w, const float* b, float* y, int M, int N, float eps) {
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    float* __restrict out = y + (long)m * N;
    // Vector lanes give a pairwise-like sum: closer to the double reference than one chain.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int n = 0; n < N; ++n) sum += row[n];
    const float mean = sum / N;
    // The row is in L1/L2 now: a second, centred pass is cheaper than a one-pass E[x^2] - mean^2
    // and does not cancel catastrophically when |mean| >> std.
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int n = 0; n < N; ++n) sq += (row[n] - mean) * (row[n] - mean);
    const float inv = 1.0f / std::sqrt(sq / N + eps);
#pragma omp simd
    for (int n = 0; n < N; ++n) out[n] = (row[n] - mean) * inv * w[n] + b[n];
  }
}
