// @kforge entry: bias_gelu_f32
// @kforge about: naive: one thread per element, tanhf
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*N, BLOCK)) block=(BLOCK)
extern "C" __global__ void bias_gelu_f32(const float* x, const float* b, float* y, int M, int N) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * N) return;
  const float u = x[i] + b[i % N];
  y[i] = 0.5f * u * (1.0f + tanhf(0.7978845608f * (u + 0.044715f * u * u * u)));
}
