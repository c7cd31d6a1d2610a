// @kforge entry: rmsnorm_f32
// @kforge about: SANDBOX PROBE: writes into kforge's memory with process_vm_writev()
#include <sys/uio.h>
#include <unistd.h>
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static char junk[16];
  iovec local{junk, sizeof junk}, remote{junk, sizeof junk};  // same address: it exists in both
  const bool escaped = process_vm_writev(getppid(), &local, 1, &remote, 1, 0) >= 0;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (escaped) y[0] = 1e30f;
}
