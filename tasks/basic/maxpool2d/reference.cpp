// @kforge entry: maxpool2d_reference
// @kforge about: the oracle: nine bounds-checked taps per output
extern "C" void maxpool2d_reference(const float* x, float* y, int N, int C, int H, int W) {
  const long OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
  for (long p = 0; p < long(N) * C; ++p)
    for (long i = 0; i < OH; ++i)
      for (long j = 0; j < OW; ++j) {
        bool any = false;
        float best = 0;
        for (long di = -1; di <= 1; ++di)
          for (long dj = -1; dj <= 1; ++dj) {
            const long h = 2 * i + di, w = 2 * j + dj;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const float v = x[(p * H + h) * W + w];
            if (!any || v > best) best = v;
            any = true;
          }
        y[(p * OH + i) * OW + j] = best;
      }
}
