// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: never returns
extern "C" void rmsnorm_f32(const float*, const float*, float* y, int, int, float) {
  for (volatile long i = 0;; i = i + 1) y[0] = 0.0f;
}
