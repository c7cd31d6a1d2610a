// @kforge entry: add_rmsnorm_f32
// @kforge about: naive: one row at a time, scalar float loops in source order
#include <cmath>

extern "C" void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    float* row = residual + (long)m * N;
    float* out = y + (long)m * N;
    float sum_squares = 0.0f;
    for (int n = 0; n < N; ++n) {
      row[n] += x[(long)m * N + n];
      sum_squares += row[n] * row[n];
    }
    const float scale = 1.0f / std::sqrt(sum_squares / N + eps);
    for (int n = 0; n < N; ++n) out[n] = row[n] * scale * w[n];
  }
}
