// @kforge entry: scale_reference
extern "C" void scale_reference(const float* x, float* y, int N, float alpha) {
  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];
}
