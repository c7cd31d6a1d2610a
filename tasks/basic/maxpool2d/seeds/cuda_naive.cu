// @kforge entry: maxpool2d_f32
// @kforge about: naive: one thread per output element, nine bounds-checked taps
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*((H - 1) / 2 + 1)*((W - 1) / 2 + 1), BLOCK)) block=(BLOCK)
extern "C" __global__ void maxpool2d_f32(const float* x, float* y, int N, int C, int H, int W) {
  const int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
  const long o = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (o >= (long)N * C * OH * OW) return;
  const int j = (int)(o % OW), i = (int)(o / OW % OH);
  const long p = o / ((long)OH * OW);
  const float* plane = x + p * H * W;
  float best = __int_as_float(0xff800000);  // -infinity
  for (int h = 2 * i - 1; h <= 2 * i + 1; ++h)
    for (int w = 2 * j - 1; w <= 2 * j + 1; ++w)
      if (h >= 0 && h < H && w >= 0 && w < W) best = fmaxf(best, plane[(long)h * W + w]);
  y[o] = best;
}
