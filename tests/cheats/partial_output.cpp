// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: writes only the first half of each row, hoping the rest of the buffer already holds the answer
// expect: incorrect
// expect-message: output elements wrong
#include <cmath>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int n = 0; n < N; ++n) ss += double(x[(long)m * N + n]) * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(float(ss / N) + eps);
    for (int n = 0; n < (N + 1) / 2; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
