// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: estimates each row's mean square from every other element (half the reads, close but not right)
// expect: incorrect
// expect-message: output elements wrong
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    int used = 0;
    for (int n = 0; n < N; n += 2, ++used) ss += double(x[(long)m * N + n]) * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(float(ss / used) + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
