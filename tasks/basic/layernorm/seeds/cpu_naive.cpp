// @kforge entry: layernorm_f32
// @kforge about: naive: three scalar passes per row (mean, variance, normalize) in f32
#include <cmath>

extern "C" void layernorm_f32(const float* x, const float* w, const float* b, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float sum = 0.0f;
    for (int n = 0; n < N; ++n) sum += row[n];
    const float mean = sum / N;
    float sq = 0.0f;
    for (int n = 0; n < N; ++n) sq += (row[n] - mean) * (row[n] - mean);
    const float inv = 1.0f / std::sqrt(sq / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = (row[n] - mean) * inv * w[n] + b[n];
  }
}
