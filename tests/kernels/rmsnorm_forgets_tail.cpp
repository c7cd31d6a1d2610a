// @kforge entry: rmsnorm_f32
// @kforge about: broken on purpose: blocks of 8 columns, forgets the tail when N % 8 != 0
#include <cmath>

extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  const int full = N / 8 * 8;
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float sum_squares = 0.0f;
    for (int n = 0; n < N; ++n) sum_squares += row[n] * row[n];
    const float scale = 1.0f / std::sqrt(sum_squares / N + eps);
    for (int n = 0; n < full; ++n) y[(long)m * N + n] = row[n] * scale * w[n];
  }
}
