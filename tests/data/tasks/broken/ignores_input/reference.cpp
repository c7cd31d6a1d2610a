// @kforge entry: scale_reference
// @kforge about: broken on purpose: never reads w
extern "C" void scale_reference(const float* x, const void* w, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
