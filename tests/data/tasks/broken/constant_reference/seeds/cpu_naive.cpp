// @kforge entry: scale_f32
// @kforge about: matches the broken reference: passes, which is why the task must be rejected
extern "C" void scale_f32(const float* x, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = 0.5f;
}
