// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: remembers the answer for every input it has seen (by a fingerprint of a few elements) and replays it
// expect: incorrect
// expect-message: the timed calls computed something else
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  const long size = (long)M * N;
  using Key = std::tuple<long, float, float, float, float>;
  static std::map<Key, std::vector<float>> seen;
  const Key key{size, x[0], x[size / 2], x[size - 1], w[N / 2]};
  auto it = seen.find(key);
  if (it != seen.end()) {
    std::memcpy(y, it->second.data(), size * sizeof(float));
    return;
  }
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int n = 0; n < N; ++n) ss += double(x[(long)m * N + n]) * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(float(ss / N) + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  seen[key].assign(y, y + size);
}
