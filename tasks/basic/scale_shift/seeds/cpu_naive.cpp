// @kforge entry: scale_shift_f32
// @kforge about: naive: one element at a time, the channel recomputed from the flat index
extern "C" void scale_shift_f32(const float* x, const float* a, const float* b, float* y, int N, int C, int H, int W) {
  const long plane = (long)H * W, total = (long)N * C * plane;
  for (long i = 0; i < total; ++i) {
    const long c = i / plane % C;
    y[i] = a[c] * x[i] + b[c];
  }
}
