// @kforge entry: rmsnorm_f32
// @kforge about: correct, but closes stdin, stdout, stderr and every descriptor up to 64 first
#include <unistd.h>

#include <cmath>

extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int fd = 0; fd < 64; ++fd) close(fd);
  for (int m = 0; m < M; ++m) {
    double sum = 0;
    for (int n = 0; n < N; ++n) sum += double(x[m * N + n]) * x[m * N + n];
    const float scale = 1.0f / std::sqrt(float(sum / N) + eps);
    for (int n = 0; n < N; ++n) y[m * N + n] = x[m * N + n] * scale * w[n];
  }
}
