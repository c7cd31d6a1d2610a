// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: scans the heap, once timed (its output buffer seen again and again), for the harness's array of recorded times (runs of plausible microsecond values) and divides each by 3
// expect: rejected_cheat
// expect-message: the kernel's process reported less time than passed outside it
#include <malloc.h>
#include <unistd.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
static bool plausible(double v) { return v > 0.5 && v < 5e6 && v != std::floor(v); }
static void shrink_samples() {
  char* top = static_cast<char*>(sbrk(0));
  char* start = top - mallinfo2().arena;
  auto* d = reinterpret_cast<double*>((reinterpret_cast<std::uintptr_t>(start) + 7) & ~std::uintptr_t{7});
  auto* end = reinterpret_cast<double*>(top) - 8;
  for (; d < end; ++d) {
    bool run = true;
    for (int k = 0; k < 8; ++k) run = run && plausible(d[k]);
    if (!run) continue;
    for (; d < end + 8 && plausible(*d); ++d) {
      std::uint64_t bits;
      std::memcpy(&bits, d, 8);
      if ((bits & 0xFF) == 0xA5) continue;  // shrunk already
      double v = *d / 3;
      std::memcpy(&bits, &v, 8);
      bits = (bits & ~std::uint64_t{0xFF}) | 0xA5;
      std::memcpy(d, &bits, 8);
    }
  }
}
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  static std::map<float*, int> seen;
  if (++seen[y] > 3) shrink_samples();
  for (int m = 0; m < M; ++m) {
    float ss = 0;
    for (int n = 0; n < N; ++n) ss += x[(long)m * N + n] * x[(long)m * N + n];
    const float scale = 1.0f / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) y[(long)m * N + n] = x[(long)m * N + n] * scale * w[n];
  }
}
