// @kforge entry: maxpool2d_f32
// @kforge about: naive: one output at a time, nine bounds-checked taps
#include <cmath>

extern "C" void maxpool2d_f32(const float* x, float* y, int N, int C, int H, int W) {
  const int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
  for (long p = 0; p < (long)N * C; ++p)
    for (int i = 0; i < OH; ++i)
      for (int j = 0; j < OW; ++j) {
        float best = -INFINITY;
        for (int h = 2 * i - 1; h <= 2 * i + 1; ++h)
          for (int w = 2 * j - 1; w <= 2 * j + 1; ++w)
            if (h >= 0 && h < H && w >= 0 && w < W) best = std::fmax(best, x[(p * H + h) * W + w]);
        y[(p * OH + i) * OW + j] = best;
      }
}
