// @kforge entry: conv2d_3x3_f32
// @kforge about: one output row of COB channels at a time: each input row, loaded once into L1, feeds 3 x COB shifted SIMD multiply-adds; (image, channel block, row) across OpenMP threads
// @kforge param: COB=4 in {1,2,4,8}
// @kforge param: PAR_THRESHOLD=1048576 in {262144,1048576,4194304}
#include <vector>

extern "C" void conv2d_3x3_f32(const float* x, const float* w, const float* bias, float* y, int N, int CI, int CO, int H,
                               int W) {
  const int blocks = (CO + COB - 1) / COB;
#pragma omp parallel if ((long)N * CO * H * W * CI * 9 >= PAR_THRESHOLD)
  {
    std::vector<float> scratch((long)COB * W);  // COB output rows being accumulated
#pragma omp for schedule(static)
    for (long t = 0; t < (long)N * blocks * H; ++t) {
      const int h = (int)(t % H), o0 = (int)(t / H % blocks) * COB, n = (int)(t / ((long)H * blocks));
      const int outs = CO - o0 < COB ? CO - o0 : COB;
      float* __restrict acc = scratch.data();
      for (int q = 0; q < outs; ++q)
#pragma omp simd
        for (int v = 0; v < W; ++v) acc[(long)q * W + v] = bias[o0 + q];
      for (int c = 0; c < CI; ++c)
        for (int i = 0; i < 3; ++i) {
          const int hh = h + i - 1;
          if (hh < 0 || hh >= H) continue;  // zero padding above and below
          const float* __restrict row = x + (((long)n * CI + c) * H + hh) * W;
          for (int q = 0; q < outs; ++q) {
            const float* k = w + (((long)(o0 + q) * CI + c) * 3 + i) * 3;
            const float k0 = k[0], k1 = k[1], k2 = k[2];
            float* __restrict a = acc + (long)q * W;
            // tap j reads row[v + j - 1]: the left tap skips v = 0, the right one v = W - 1.
#pragma omp simd
            for (int v = 1; v < W; ++v) a[v] += k0 * row[v - 1];
#pragma omp simd
            for (int v = 0; v < W; ++v) a[v] += k1 * row[v];
#pragma omp simd
            for (int v = 0; v < W - 1; ++v) a[v] += k2 * row[v + 1];
          }
        }
      for (int q = 0; q < outs; ++q) {
        float* __restrict out = y + (((long)n * CO + o0 + q) * H + h) * W;
#pragma omp simd
        for (int v = 0; v < W; ++v) out[v] = acc[(long)q * W + v];
      }
    }
  }
}
