// @kforge entry: scale_shift_reference
// @kforge about: the oracle: a[c] * x + b[c] in double, one element at a time
extern "C" void scale_shift_reference(const float* x, const float* a, const float* b, float* y, int N, int C, int H,
                                      int W) {
  const long plane = long(H) * W;
  for (long n = 0; n < N; ++n)
    for (long c = 0; c < C; ++c)
      for (long i = 0; i < plane; ++i) {
        const long at = (n * C + c) * plane + i;
        y[at] = float(double(a[c]) * x[at] + b[c]);
      }
}
