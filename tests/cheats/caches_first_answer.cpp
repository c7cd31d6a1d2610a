// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: computes once per size, then replays the stored answer for any input
// expect: incorrect
// expect-message: output elements wrong
#include <cmath>
#include <cstring>
#include <map>
#include <vector>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::map<long, std::vector<float>> answers;
  auto& answer = answers[(long)M * N];
  if (!answer.empty()) {
    std::memcpy(y, answer.data(), answer.size() * sizeof(float));
    return;
  }
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  answer.assign(y, y + (long)M * N);
}
