// @kforge entry: conv_depthwise_f32
// @kforge about: naive: one output at a time, nine bounds-checked taps
extern "C" void conv_depthwise_f32(const float* x, const float* w, float* y, int N, int C, int H, int W) {
  for (long p = 0; p < (long)N * C; ++p) {
    const float* k = w + (p % C) * 9;
    for (int h = 0; h < H; ++h)
      for (int v = 0; v < W; ++v) {
        float sum = 0.0f;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) {
            const int hh = h + i - 1, vv = v + j - 1;
            if (hh >= 0 && hh < H && vv >= 0 && vv < W) sum += k[i * 3 + j] * x[(p * H + hh) * W + vv];
          }
        y[(p * H + h) * W + v] = sum;
      }
  }
}
