// @kforge entry: resize_bilinear_reference
// @kforge about: the oracle: PyTorch's align_corners=False source index and weights, in double
#include <cmath>

static void source(long i, int in, int out, long* lo, long* hi, double* frac) {
  double s = (i + 0.5) * double(in) / out - 0.5;
  if (s < 0) s = 0;
  *lo = long(std::floor(s));
  if (*lo > in - 1) *lo = in - 1;
  *hi = *lo + 1 < in ? *lo + 1 : in - 1;
  *frac = s - *lo;
}

extern "C" void resize_bilinear_reference(const float* x, float* y, int N, int C, int H, int W, int OH, int OW) {
  for (long p = 0; p < long(N) * C; ++p) {
    const float* plane = x + p * H * W;
    for (long i = 0; i < OH; ++i) {
      long h0, h1;
      double lh;
      source(i, H, OH, &h0, &h1, &lh);
      for (long j = 0; j < OW; ++j) {
        long w0, w1;
        double lw;
        source(j, W, OW, &w0, &w1, &lw);
        const double top = (1 - lw) * plane[h0 * W + w0] + lw * plane[h0 * W + w1];
        const double bottom = (1 - lw) * plane[h1 * W + w0] + lw * plane[h1 * W + w1];
        y[(p * OH + i) * OW + j] = float((1 - lh) * top + lh * bottom);
      }
    }
  }
}
