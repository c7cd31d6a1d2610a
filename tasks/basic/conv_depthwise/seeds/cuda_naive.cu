// @kforge entry: conv_depthwise_f32
// @kforge about: naive: one thread per output element, nine bounds-checked taps
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*H*W, BLOCK)) block=(BLOCK)
extern "C" __global__ void conv_depthwise_f32(const float* x, const float* w, float* y, int N, int C, int H, int W) {
  const long e = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (e >= (long)N * C * H * W) return;
  const int v = (int)(e % W), h = (int)(e / W % H);
  const long p = e / ((long)W * H);
  const float* plane = x + p * H * W;
  const float* k = w + (p % C) * 9;
  float sum = 0.0f;
  for (int i = 0; i < 3; ++i) {
    const int hh = h + i - 1;
    if (hh < 0 || hh >= H) continue;
    for (int j = 0; j < 3; ++j) {
      const int vv = v + j - 1;
      if (vv >= 0 && vv < W) sum += k[i * 3 + j] * plane[(long)hh * W + vv];
    }
  }
  y[e] = sum;
}
