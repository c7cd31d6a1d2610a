// @kforge entry: scale_folded
// @kforge about: one multiply per element; CHECKED only feeds a compile-time check, so every value gives the same code
// @kforge param: CHECKED=1 in {1,2,3}
extern "C" void scale_folded(const float* x, float* y, int N, float alpha) {
  static_assert(CHECKED > 0);
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
