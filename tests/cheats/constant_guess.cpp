// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: assumes unit-variance inputs (scale = 1) instead of computing each row's norm
// expect: incorrect
// expect-message: output elements wrong
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float) {
  for (long i = 0; i < (long)M * N; ++i) y[i] = x[i] * w[i % N];
}
