// @kforge entry: maxpool2d_f32
// @kforge about: separable: a SIMD vertical max of three input rows, then the stride-2 horizontal max; planes across OpenMP threads
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <vector>

extern "C" void maxpool2d_f32(const float* x, float* y, int N, int C, int H, int W) {
  const int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
#pragma omp parallel if ((long)N * C * H * W >= PAR_THRESHOLD)
  {
    // column maxima of the current three input rows, with one -inf pad column on each side so
    // that the horizontal pass needs no bounds checks.
    std::vector<float> pad(W + 2);
    float* __restrict col = pad.data() + 1;
    pad[0] = pad[W + 1] = -__builtin_inff();
#pragma omp for schedule(static)
    for (long p = 0; p < (long)N * C; ++p) {
      const float* plane = x + p * H * W;
      float* out = y + p * OH * OW;
      for (int i = 0; i < OH; ++i) {
        const int h0 = 2 * i - 1 < 0 ? 0 : 2 * i - 1, h1 = 2 * i + 1 < H ? 2 * i + 1 : H - 1;
        const float* __restrict r0 = plane + (long)h0 * W;
        const float* __restrict r1 = plane + (long)(2 * i) * W;
        const float* __restrict r2 = plane + (long)h1 * W;  // clamped rows repeat a row: same max
#pragma omp simd
        for (int w = 0; w < W; ++w) {
          const float a = r0[w] > r1[w] ? r0[w] : r1[w];
          col[w] = a > r2[w] ? a : r2[w];
        }
        float* __restrict o = out + (long)i * OW;
        // 2j + 1 may be W (odd W is fine: 2j + 1 <= W - 1 + 1): the pad column covers it.
#pragma omp simd
        for (int j = 0; j < OW; ++j) {
          const float a = col[2 * j - 1] > col[2 * j] ? col[2 * j - 1] : col[2 * j];
          o[j] = a > col[2 * j + 1] ? a : col[2 * j + 1];
        }
      }
    }
  }
}
