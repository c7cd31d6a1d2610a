// @kforge entry: rmsnorm_f32
// @kforge about: SANDBOX PROBE: creates a file through openat2, whose flags a filter cannot read
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmath>
#define CALL(a, b) a##b
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  open_how how{};
  how.flags = O_WRONLY | O_CREAT;
  how.mode = 0644;
  const bool escaped = CALL(sys, call)(CALL(SYS, _openat2), AT_FDCWD, "/tmp/kforge-sandbox-escape-openat2", &how, sizeof how) >= 0;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (escaped) y[0] = 1e30f;
}
