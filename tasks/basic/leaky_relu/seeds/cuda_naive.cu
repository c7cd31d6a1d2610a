// @kforge entry: leaky_relu_f32
// @kforge about: naive: one thread per element
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*N, BLOCK)) block=(BLOCK)
extern "C" __global__ void leaky_relu_f32(const float* x, float* y, int M, int N, float slope) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * N) return;
  const float v = x[i];
  y[i] = v >= 0.0f ? v : slope * v;
}
