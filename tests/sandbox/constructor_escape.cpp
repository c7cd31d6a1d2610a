// @kforge entry: rmsnorm_f32
// @kforge about: SANDBOX PROBE: escapes from a static constructor, which runs when the kernel loads
#include <fcntl.h>
#include <cmath>
static const bool escaped = open("/tmp/kforge-sandbox-escape-ctor", O_WRONLY | O_CREAT, 0644) >= 0;
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (escaped) y[0] = 1e30f;
}
