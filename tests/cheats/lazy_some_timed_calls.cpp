// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: once it is called often (the timing loop), skips the work on three calls in four
// expect: incorrect
// expect-message: the timed calls computed something else
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static long calls = 0;
  if (++calls > 40 && calls % 4 != 0) return;
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int n = 0; n < N; ++n) ss += double(x[(long)m * N + n]) * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(float(ss / N) + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
