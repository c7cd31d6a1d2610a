// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: returns at once and lets a detached thread finish after the timer stops
// expect: rejected_cheat
// expect-message: 'std::thread' starts threads
#include <cmath>
#include <thread>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  std::thread([=] {
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  }).detach();
}
