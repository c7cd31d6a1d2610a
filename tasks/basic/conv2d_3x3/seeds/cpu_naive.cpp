// @kforge entry: conv2d_3x3_f32
// @kforge about: naive: direct convolution, one output at a time, bounds-checked taps
extern "C" void conv2d_3x3_f32(const float* x, const float* w, const float* bias, float* y, int N, int CI, int CO, int H,
                               int W) {
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < CO; ++o)
      for (int h = 0; h < H; ++h)
        for (int v = 0; v < W; ++v) {
          float sum = bias[o];
          for (int c = 0; c < CI; ++c)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) {
                const int hh = h + i - 1, vv = v + j - 1;
                if (hh >= 0 && hh < H && vv >= 0 && vv < W)
                  sum += w[((o * CI + c) * 3 + i) * 3 + j] * x[(((long)n * CI + c) * H + hh) * W + vv];
              }
          y[(((long)n * CO + o) * H + h) * W + v] = sum;
        }
}
