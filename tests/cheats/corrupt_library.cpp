// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: scribbles over every inherited descriptor (an open kernel library among them)
// expect: runtime_error
// expect-message: malformed result
#include <unistd.h>
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static const char junk[4096] = "garbage garbage garbage";
  for (int fd = 3; fd < 64; ++fd) (void)!write(fd, junk, sizeof junk);
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
