// @kforge entry: conv2d_3x3_f32
// @kforge about: naive: one thread per output element, CI x 9 bounds-checked taps from global memory
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*CO*H*W, BLOCK)) block=(BLOCK)
extern "C" __global__ void conv2d_3x3_f32(const float* x, const float* w, const float* bias, float* y, int N, int CI,
                                          int CO, int H, int W) {
  const long e = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (e >= (long)N * CO * H * W) return;
  const int v = (int)(e % W), h = (int)(e / W % H), o = (int)(e / ((long)W * H) % CO);
  const long n = e / ((long)W * H * CO);
  float sum = bias[o];
  for (int c = 0; c < CI; ++c) {
    const float* plane = x + (n * CI + c) * H * W;
    const float* k = w + ((long)o * CI + c) * 9;
    for (int i = 0; i < 3; ++i) {
      const int hh = h + i - 1;
      if (hh < 0 || hh >= H) continue;
      for (int j = 0; j < 3; ++j) {
        const int vv = v + j - 1;
        if (vv >= 0 && vv < W) sum += k[i * 3 + j] * plane[(long)hh * W + vv];
      }
    }
  }
  y[e] = sum;
}
