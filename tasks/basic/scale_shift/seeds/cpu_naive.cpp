// @kforge entry: scale_shift_f32
// @kforge about: naive: loops over batch, channel and plane, one element at a time, one thread
extern "C" void scale_shift_f32(const float* x, const float* a, const float* b, float* y, int N, int C, int H, int W) {
  const long plane = (long)H * W;
  for (long n = 0; n < N; ++n)
    for (long c = 0; c < C; ++c)
      for (long i = 0; i < plane; ++i) y[(n * C + c) * plane + i] = a[c] * x[(n * C + c) * plane + i] + b[c];
}
