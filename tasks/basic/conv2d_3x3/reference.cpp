// @kforge entry: conv2d_3x3_reference
// @kforge about: the oracle: direct convolution with bounds-checked taps, sums in double
extern "C" void conv2d_3x3_reference(const float* x, const float* w, const float* bias, float* y, int N, int CI, int CO,
                                     int H, int W) {
  for (long n = 0; n < N; ++n)
    for (long o = 0; o < CO; ++o)
      for (long h = 0; h < H; ++h)
        for (long v = 0; v < W; ++v) {
          double sum = bias[o];
          for (long c = 0; c < CI; ++c)
            for (long i = 0; i < 3; ++i)
              for (long j = 0; j < 3; ++j) {
                const long hh = h + i - 1, vv = v + j - 1;
                if (hh < 0 || hh >= H || vv < 0 || vv >= W) continue;
                sum += double(w[((o * CI + c) * 3 + i) * 3 + j]) * x[((n * CI + c) * H + hh) * W + vv];
              }
          y[((n * CO + o) * H + h) * W + v] = float(sum);
        }
}
