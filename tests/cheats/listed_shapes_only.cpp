// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: computes only for the shapes the task lists, leaves other shapes unwritten
// expect: incorrect
// expect-message: (a held-out shape)
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  const bool listed = (M == 1 && N == 1) || (M == 3 && N == 17) || (M == 5 && N == 4099) || (M == 2 && N == 4096) ||
                      (M == 1 && N == 4096) || (M == 64 && N == 4096) || (M == 8192 && N == 4096);
  if (!listed) return;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
