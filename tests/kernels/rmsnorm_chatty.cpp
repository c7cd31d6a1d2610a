// @kforge entry: rmsnorm_f32
// @kforge about: correct, but prints 4 MiB to stdout and stderr on every call (bad manners, not wrong)
#include <cmath>
#include <cstdio>
#include <cstring>

extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static char line[1 << 16];
  std::memset(line, 'x', sizeof line - 2);
  line[sizeof line - 2] = '\n';
  for (int i = 0; i < 32; ++i) std::fputs(line, i % 2 ? stdout : stderr);
  for (int m = 0; m < M; ++m) {
    double sum = 0;
    for (int n = 0; n < N; ++n) sum += double(x[m * N + n]) * x[m * N + n];
    const float scale = 1.0f / std::sqrt(float(sum / N) + eps);
    for (int n = 0; n < N; ++n) y[m * N + n] = x[m * N + n] * scale * w[n];
  }
}
