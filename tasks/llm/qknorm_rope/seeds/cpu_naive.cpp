// @kforge entry: qknorm_rope_f32
// @kforge about: naive: per head, a scalar norm pass, then each pair's angle from std::pow, std::cos and std::sin in f32
#include <cmath>

static void norm_rotate(float* x, const float* gain, int D, int p, float eps, float theta) {
  float sum_squares = 0.0f;
  for (int i = 0; i < D; ++i) sum_squares += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum_squares / D + eps);
  for (int i = 0; i < D; ++i) x[i] = x[i] * scale * gain[i];
  for (int i = 0; i < D / 2; ++i) {
    const float angle = (float)p * std::pow(theta, -2.0f * (float)i / (float)D);
    const float c = std::cos(angle), s = std::sin(angle);
    const float x0 = x[i], x1 = x[i + D / 2];
    x[i] = x0 * c - x1 * s;
    x[i + D / 2] = x0 * s + x1 * c;
  }
}

extern "C" void qknorm_rope_f32(float* q, float* k, const float* q_w, const float* k_w, const int* pos, int M, int H,
                                int KVH, int D, float eps, float theta) {
  for (int m = 0; m < M; ++m) {
    for (int h = 0; h < H; ++h) norm_rotate(q + ((long)m * H + h) * D, q_w, D, pos[m], eps, theta);
    for (int g = 0; g < KVH; ++g) norm_rotate(k + ((long)m * KVH + g) * D, k_w, D, pos[m], eps, theta);
  }
}
