// @kforge entry: scale_shift_f32
// @kforge about: naive: one thread per element, the channel from a division and a modulo
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*H*W, BLOCK)) block=(BLOCK)
extern "C" __global__ void scale_shift_f32(const float* x, const float* a, const float* b, float* y, int N, int C,
                                           int H, int W) {
  const long plane = (long)H * W;
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)N * C * plane) return;
  const int c = (int)(i / plane % C);
  y[i] = a[c] * x[i] + b[c];
}
