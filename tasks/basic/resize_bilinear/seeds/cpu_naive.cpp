// @kforge entry: resize_bilinear_f32
// @kforge about: naive: one output pixel at a time, both source coordinates recomputed per pixel
extern "C" void resize_bilinear_f32(const float* x, float* y, int N, int C, int H, int W, int OH, int OW) {
  const float scale_h = (float)H / OH, scale_w = (float)W / OW;
  for (long p = 0; p < (long)N * C; ++p) {
    const float* plane = x + p * H * W;
    for (int i = 0; i < OH; ++i)
      for (int j = 0; j < OW; ++j) {
        float sh = (i + 0.5f) * scale_h - 0.5f, sw = (j + 0.5f) * scale_w - 0.5f;
        if (sh < 0) sh = 0;
        if (sw < 0) sw = 0;
        const int h0 = (int)sh, w0 = (int)sw;  // truncation is floor: sh, sw >= 0
        const int h1 = h0 + 1 < H ? h0 + 1 : H - 1, w1 = w0 + 1 < W ? w0 + 1 : W - 1;
        const float lh = sh - h0, lw = sw - w0;
        y[(p * OH + i) * OW + j] = (1 - lh) * ((1 - lw) * plane[h0 * W + w0] + lw * plane[h0 * W + w1]) +
                                   lh * ((1 - lw) * plane[h1 * W + w0] + lw * plane[h1 * W + w1]);
      }
  }
}
