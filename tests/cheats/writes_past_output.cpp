// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: correct values, but scribbles one float past the end of y
// expect: incorrect
// expect-message: wrote outside 'y'
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  y[(long)M * N] = 0.0f;
}
