// @kforge entry: scale_f32
// @kforge about: matches the broken reference
extern "C" void scale_f32(const float* x, const void* w, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
