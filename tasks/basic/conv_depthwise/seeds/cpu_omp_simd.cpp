// @kforge entry: conv_depthwise_f32
// @kforge about: row at a time: up to three input rows times three shifted taps as unit-stride SIMD multiply-adds, borders by loop bounds; planes across OpenMP threads
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
extern "C" void conv_depthwise_f32(const float* x, const float* w, float* y, int N, int C, int H, int W) {
#pragma omp parallel for schedule(static) if ((long)N * C * H * W >= PAR_THRESHOLD)
  for (long p = 0; p < (long)N * C; ++p) {
    const float* k = w + (p % C) * 9;
    const float* plane = x + p * H * W;
    for (int h = 0; h < H; ++h) {
      float* __restrict out = y + (p * H + h) * W;
#pragma omp simd
      for (int v = 0; v < W; ++v) out[v] = 0.0f;
      for (int i = 0; i < 3; ++i) {
        const int hh = h + i - 1;
        if (hh < 0 || hh >= H) continue;  // zero padding above and below
        const float* __restrict row = plane + (long)hh * W;
        const float k0 = k[i * 3], k1 = k[i * 3 + 1], k2 = k[i * 3 + 2];
        // The interior in one pass; the first and last column lose their outside tap.
#pragma omp simd
        for (int v = 1; v < W - 1; ++v) out[v] += k0 * row[v - 1] + k1 * row[v] + k2 * row[v + 1];
        if (W == 1) {
          out[0] += k1 * row[0];
        } else {
          out[0] += k1 * row[0] + k2 * row[1];
          out[W - 1] += k0 * row[W - 2] + k1 * row[W - 1];
        }
      }
    }
  }
}
