// @kforge entry: scale_copy
// @kforge about: a broken baseline: copies x and forgets alpha
extern "C" void scale_copy(const float* x, float* y, int N, float) {
  for (int i = 0; i < N; ++i) y[i] = x[i];
}
