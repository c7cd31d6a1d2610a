// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: tells the timed phase by its pointers (the same output buffer again and again, input sets seen before) and then replays the output it cached for that input set
// expect: incorrect
// expect-message: the timed calls computed something else
#include <cmath>
#include <cstring>
#include <map>
#include <vector>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::map<const float*, int> outputs_seen;
  static std::map<const float*, std::vector<float>> cached;
  const long size = (long)M * N;
  const bool timed = ++outputs_seen[y] > 3;  // the harness's own output buffer, reused call after call
  auto it = cached.find(x);
  if (timed && it != cached.end() && (long)it->second.size() == size) {
    std::memcpy(y, it->second.data(), size * sizeof(float));
    return;
  }
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
  if (timed) cached[x].assign(y, y + size);
}
