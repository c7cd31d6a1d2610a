// @kforge entry: rmsnorm_f32
// @kforge about: keeps a scratch buffer across calls, grown when a call needs more (state, but no answers)
#include <cmath>
#include <memory>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::unique_ptr<float[]> scales;
  static int capacity = 0;
  if (M > capacity) scales.reset(new float[capacity = M]);
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int n = 0; n < N; ++n) ss += double(x[(long)m * N + n]) * x[(long)m * N + n];
    scales[m] = 1.0f / std::sqrt(float(ss / N) + eps);
  }
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scales[m] * w[n];
}
