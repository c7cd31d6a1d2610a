// @kforge entry: qknorm_rope_reference
// @kforge about: the oracle: the norm, angles, sines and cosines in double
#include <cmath>
#include <vector>

static void norm_rotate(float* x, const float* gain, long D, double p, double eps, double theta) {
  double sum_squares = 0;
  for (long i = 0; i < D; ++i) sum_squares += double(x[i]) * x[i];
  const double scale = 1.0 / std::sqrt(sum_squares / D + eps);
  std::vector<double> n(D);
  for (long i = 0; i < D; ++i) n[i] = x[i] * scale * gain[i];
  for (long i = 0; i < D / 2; ++i) {
    const double angle = p * std::pow(theta, -2.0 * double(i) / double(D));
    const double c = std::cos(angle), s = std::sin(angle);
    x[i] = float(n[i] * c - n[i + D / 2] * s);
    x[i + D / 2] = float(n[i] * s + n[i + D / 2] * c);
  }
}

extern "C" void qknorm_rope_reference(float* q, float* k, const float* q_w, const float* k_w, const int* pos, int M,
                                      int H, int KVH, int D, float eps, float theta) {
  for (long m = 0; m < M; ++m) {
    for (long h = 0; h < H; ++h) norm_rotate(q + (m * H + h) * D, q_w, D, pos[m], eps, theta);
    for (long g = 0; g < KVH; ++g) norm_rotate(k + (m * KVH + g) * D, k_w, D, pos[m], eps, theta);
  }
}
