// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: writes through a null pointer
extern "C" void rmsnorm_f32(const float*, const float*, float* y, int, int, float) {
  volatile float* bad = nullptr;
  bad[y ? 1 : 0] = 1.0f;
}
