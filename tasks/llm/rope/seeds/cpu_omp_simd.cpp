// @kforge entry: rope_f32
// @kforge about: cos/sin computed once per token and shared by its H+KVH heads; SIMD rotation; tokens across OpenMP threads
// @kforge param: PAR_THRESHOLD=1048576 in {16384,65536,262144,1048576,4194304}
#include <cmath>
#include <vector>

extern "C" void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  const int half = D / 2;
  // The inverse frequencies do not depend on the token.
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0f * (float)i / (float)D);
#pragma omp parallel if ((long)M * (H + KVH) * D >= PAR_THRESHOLD)
  {
    std::vector<float> cos_table(half), sin_table(half);
#pragma omp for schedule(static)
    for (int m = 0; m < M; ++m) {
      for (int i = 0; i < half; ++i) {
        const float angle = (float)pos[m] * inv_freq[i];
        cos_table[i] = std::cos(angle);
        sin_table[i] = std::sin(angle);
      }
      const float* __restrict c = cos_table.data();
      const float* __restrict s = sin_table.data();
      for (int head = 0; head < H + KVH; ++head) {
        float* __restrict x = head < H ? q + ((long)m * H + head) * D : k + ((long)m * KVH + head - H) * D;
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const float x0 = x[i], x1 = x[i + half];
          x[i] = x0 * c[i] - x1 * s[i];
          x[i + half] = x0 * s[i] + x1 * c[i];
        }
      }
    }
  }
}
