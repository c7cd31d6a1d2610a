// @kforge entry: swiglu_f32
// @kforge about: naive: one thread per element, expf
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*N, BLOCK)) block=(BLOCK)
extern "C" __global__ void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * N) return;
  const float g = gate[i];
  y[i] = g / (1.0f + expf(-g)) * up[i];
}
