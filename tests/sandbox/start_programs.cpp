// @kforge entry: rmsnorm_f32
// @kforge about: SANDBOX PROBE: a new process with clone(), and a program with execvpe()
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <cmath>
#define CALL(a, b) a##b  // (the static check refuses the word itself)
static char stack[65536];
static int child(void*) { return 0; }
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  bool escaped = CALL(cl, one)(child, stack + sizeof stack, SIGCHLD, nullptr) >= 0;
  char* argv[] = {const_cast<char*>("true"), nullptr};
  char* envp[] = {nullptr};
  escaped = escaped || execvpe("true", argv, envp) == 0;  // on success this never returns
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (escaped) y[0] = 1e30f;
}
