// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: never returns (spins on its input): the per-call watchdog must end it in seconds, not the 180 s evaluation timeout
// @kforge launch: grid=(M) block=(256)
// expect: timeout
// expect-message: per-call watchdog
extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  volatile const float* v = x;
  const float first = v[0];
  while (v[0] == first || v[0] != v[0]) {  // the input never changes (and NaN loops too)
  }
  y[(long)blockIdx.x * N + threadIdx.x % N] = first;
}
