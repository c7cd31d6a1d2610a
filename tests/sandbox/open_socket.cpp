// @kforge entry: rmsnorm_f32
// @kforge about: SANDBOX PROBE: opens sockets (to send the inputs away, or fetch an answer)
#include <sys/socket.h>
#include <cmath>
#define JOIN(a, b) a##b  // the word the static check refuses never appears
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  const bool escaped = JOIN(sock, et)(AF_INET, SOCK_STREAM, 0) >= 0 || JOIN(sock, et)(AF_UNIX, SOCK_DGRAM, 0) >= 0;
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (escaped) y[0] = 1e30f;
}
