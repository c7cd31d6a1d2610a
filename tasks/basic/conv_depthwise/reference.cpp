// @kforge entry: conv_depthwise_reference
// @kforge about: the oracle: nine bounds-checked taps per output, sums in double
extern "C" void conv_depthwise_reference(const float* x, const float* w, float* y, int N, int C, int H, int W) {
  for (long p = 0; p < long(N) * C; ++p) {
    const long c = p % C;
    for (long h = 0; h < H; ++h)
      for (long v = 0; v < W; ++v) {
        double sum = 0;
        for (long i = 0; i < 3; ++i)
          for (long j = 0; j < 3; ++j) {
            const long hh = h + i - 1, vv = v + j - 1;
            if (hh < 0 || hh >= H || vv < 0 || vv >= W) continue;
            sum += double(w[c * 9 + i * 3 + j]) * x[(p * H + hh) * W + vv];
          }
        y[(p * H + h) * W + v] = float(sum);
      }
  }
}
