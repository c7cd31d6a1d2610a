// @kforge entry: resize_bilinear_f32
// @kforge about: naive: one thread per output pixel (coalesced writes), four loads through the cache
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*OH*OW, BLOCK)) block=(BLOCK)
extern "C" __global__ void resize_bilinear_f32(const float* x, float* y, int N, int C, int H, int W, int OH,
                                               int OW) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)N * C * OH * OW) return;
  const int j = (int)(i % OW), oh = (int)(i / OW % OH);
  const long p = i / ((long)OH * OW);
  const float sh = fmaxf((oh + 0.5f) * ((float)H / OH) - 0.5f, 0.0f);
  const float sw = fmaxf((j + 0.5f) * ((float)W / OW) - 0.5f, 0.0f);
  const int h0 = min((int)sh, H - 1), w0 = min((int)sw, W - 1);
  const int h1 = min(h0 + 1, H - 1), w1 = min(w0 + 1, W - 1);
  const float lh = sh - h0, lw = sw - w0;
  const float* plane = x + p * H * W;
  const float t = plane[h0 * W + w0] + lw * (plane[h0 * W + w1] - plane[h0 * W + w0]);
  const float b = plane[h1 * W + w0] + lw * (plane[h1 * W + w1] - plane[h1 * W + w0]);
  y[i] = t + lh * (b - t);
}
