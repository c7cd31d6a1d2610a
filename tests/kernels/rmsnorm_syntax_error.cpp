// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: does not compile
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  y[0] = x[0] * w[0]   // missing semicolon
}
