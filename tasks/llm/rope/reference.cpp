// @kforge entry: rope_reference
// @kforge about: the oracle: angles, sines and cosines in double
#include <cmath>

static void rotate(float* x, long D, double p, double theta) {
  for (long i = 0; i < D / 2; ++i) {
    const double angle = p * std::pow(theta, -2.0 * double(i) / double(D));
    const double c = std::cos(angle), s = std::sin(angle);
    const double x0 = x[i], x1 = x[i + D / 2];
    x[i] = float(x0 * c - x1 * s);
    x[i + D / 2] = float(x0 * s + x1 * c);
  }
}

extern "C" void rope_reference(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  for (long m = 0; m < M; ++m) {
    for (long h = 0; h < H; ++h) rotate(q + (m * H + h) * D, D, pos[m], theta);
    for (long g = 0; g < KVH; ++g) rotate(k + (m * KVH + g) * D, D, pos[m], theta);
  }
}
