// @kforge entry: scale_f32
// @kforge about: one multiply per element
extern "C" void scale_f32(const float* x, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
