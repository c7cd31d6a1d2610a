// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT (or a race): every other call returns a slightly different answer
// expect: incorrect
// expect-message: not deterministic
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static int calls = 0;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (++calls % 2 == 0) y[0] += 0.5f;  // a race that sometimes loses an update
}
