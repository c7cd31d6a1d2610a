// @kforge entry: qknorm_rope_f32
// @kforge about: cos/sin once per token, shared by its heads; the norm's gain folded into the rotation; SIMD passes; tokens across OpenMP threads
// @kforge param: PAR_THRESHOLD=1048576 in {16384,65536,262144,1048576,4194304}
#include <cmath>
#include <vector>

extern "C" void qknorm_rope_f32(float* q, float* k, const float* q_w, const float* k_w, const int* pos, int M, int H,
                                int KVH, int D, float eps, float theta) {
  const int half = D / 2;
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
        const float* __restrict g = head < H ? q_w : k_w;
        float sum_squares = 0.0f;
#pragma omp simd reduction(+ : sum_squares)
        for (int i = 0; i < D; ++i) sum_squares += x[i] * x[i];
        const float scale = 1.0f / std::sqrt(sum_squares / D + eps);
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const float x0 = x[i] * scale * g[i], x1 = x[i + half] * scale * g[i + half];
          x[i] = x0 * c[i] - x1 * s[i];
          x[i + half] = x0 * s[i] + x1 * c[i];
        }
      }
    }
  }
}
