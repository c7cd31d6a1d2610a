// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: finds the harness's random generator on the stack once timed (an mt19937_64 whose position moves between calls), reads the value it drew last, and skips the work whenever that value says the call goes unchecked
// expect: incorrect
// expect-message: the timed calls computed something else
#include <cmath>
#include <cstdint>
#include <map>
struct Mt { std::uint64_t x[312]; std::uint64_t p; };
static std::uint64_t temper(std::uint64_t z) {
  z ^= (z >> 29) & 0x5555555555555555ull;
  z ^= (z << 17) & 0x71d67fffeda60000ull;
  z ^= (z << 37) & 0xfff7eee000000000ull;
  return z ^ (z >> 43);
}
// The generator that moved since the last call, if exactly one did: its last output decides.
static int predicted_unchecked() {
  static std::map<const Mt*, std::uint64_t> positions;
  volatile char here = 0;
  const auto* low = reinterpret_cast<const std::uint64_t*>((reinterpret_cast<std::uintptr_t>(&here) + 7) & ~std::uintptr_t{7});
  const Mt* moved = nullptr;
  int movers = 0;
  for (const std::uint64_t* q = low; q < low + 4096; ++q) {
    if (q[312] == 0 || q[312] > 312) continue;
    const Mt* g = reinterpret_cast<const Mt*>(q);
    auto it = positions.find(g);
    if (it != positions.end() && it->second != g->p) moved = g, ++movers;
    positions[g] = g->p;
  }
  if (movers != 1) return 0;
  return temper(moved->x[moved->p - 1]) % 8 != 0;
}
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::map<float*, int> seen;
  if (++seen[y] > 3 && predicted_unchecked()) return;  // timed: the same output buffer again and again
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
