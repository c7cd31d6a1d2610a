// @kforge entry: gelu_f32
// @kforge about: naive: one thread per element, tanhf
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*N, BLOCK)) block=(BLOCK)
extern "C" __global__ void gelu_f32(const float* x, float* y, int M, int N) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * N) return;
  const float v = x[i];
  y[i] = 0.5f * v * (1.0f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
}
