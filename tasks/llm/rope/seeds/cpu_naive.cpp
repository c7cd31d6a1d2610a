// @kforge entry: rope_f32
// @kforge about: naive: every head recomputes its angles with std::pow, std::cos and std::sin in f32
#include <cmath>

static void rotate(float* x, int D, int p, float theta) {
  for (int i = 0; i < D / 2; ++i) {
    const float angle = (float)p * std::pow(theta, -2.0f * (float)i / (float)D);
    const float c = std::cos(angle), s = std::sin(angle);
    const float x0 = x[i], x1 = x[i + D / 2];
    x[i] = x0 * c - x1 * s;
    x[i + D / 2] = x0 * s + x1 * c;
  }
}

extern "C" void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  for (int m = 0; m < M; ++m) {
    for (int h = 0; h < H; ++h) rotate(q + ((long)m * H + h) * D, D, pos[m], theta);
    for (int g = 0; g < KVH; ++g) rotate(k + ((long)m * KVH + g) * D, D, pos[m], theta);
  }
}
