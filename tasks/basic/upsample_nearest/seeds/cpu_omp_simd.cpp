// @kforge entry: upsample_nearest_f32
// @kforge about: each input row widened once into the first of its S output rows, which is then copied S-1 times; rows across OpenMP threads above PAR_THRESHOLD outputs
// @kforge param: PAR_THRESHOLD=262144 in {16384,65536,262144,1048576,4194304}
#include <cstring>

static inline void widen_row(const float* __restrict in, float* __restrict out, int W, int S) {
  if (S == 2) {  // the common case: a fixed inner count the compiler unrolls into shuffles
#pragma omp simd
    for (int w = 0; w < W; ++w) {
      out[2 * w] = in[w];
      out[2 * w + 1] = in[w];
    }
    return;
  }
  for (int w = 0; w < W; ++w)
    for (int s = 0; s < S; ++s) out[(long)w * S + s] = in[w];
}

static inline void upsample_row(const float* x, float* y, long row, int W, int S) {
  const long OW = (long)W * S;
  float* first = y + row * S * OW;
  widen_row(x + row * W, first, W, S);
  for (int s = 1; s < S; ++s) std::memcpy(first + s * OW, first, OW * sizeof(float));
}

extern "C" void upsample_nearest_f32(const float* x, float* y, int N, int C, int H, int W, int S) {
  const long rows = (long)N * C * H;  // input rows; row r feeds output rows r*S .. r*S+S-1
  if (rows * W * S * S < PAR_THRESHOLD) {
    for (long r = 0; r < rows; ++r) upsample_row(x, y, r, W, S);
    return;
  }
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) upsample_row(x, y, r, W, S);
}
