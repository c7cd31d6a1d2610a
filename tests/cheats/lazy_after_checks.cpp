// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: computes for the correctness calls, then returns at once when timed
// expect: incorrect
// expect-message: the timed calls computed something else
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static int calls = 0;
  if (++calls > 40) return;  // more calls than the correctness phase makes (7 shapes x 4)
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
