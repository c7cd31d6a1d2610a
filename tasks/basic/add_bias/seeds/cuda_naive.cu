// @kforge entry: add_bias_f32
// @kforge about: naive: one thread per element, the column from a modulo
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*N, BLOCK)) block=(BLOCK)
extern "C" __global__ void add_bias_f32(const float* x, const float* b, float* y, int M, int N) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * N) return;
  y[i] = x[i] + b[i % N];
}
