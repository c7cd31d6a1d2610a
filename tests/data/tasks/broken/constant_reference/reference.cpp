// @kforge entry: scale_reference
// @kforge about: broken on purpose: a constant output that ignores x
extern "C" void scale_reference(const float* x, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = 0.5f;
}
