// Exemplar (resize): a kernel for task basic/resize_bilinear, from its seed seeds/cpu_omp_simd.cpp.
// Semantics: y[n,c,i,j] = bilinear sample of x[n,c] at PyTorch's align_corners=False source point ((i+0.5)*H/OH-0.5, (j+0.5)*W/OW-0.5), clamped at 0 and at the edge.
// Arguments: x f32[N,C,H,W] in, y f32[N,C,OH,OW] out, N, C, H, W, OH, OW
// @kforge entry: resize_bilinear_f32
// @kforge about: column indices and weights tabulated once per call; output rows of all planes across OpenMP threads above PAR_THRESHOLD outputs; SIMD gathers along a row
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <vector>

// PyTorch's align_corners=False source coordinate of output index i: clamped at 0, its floor,
// the next index (clamped at the edge) and the fraction.
static inline void source(int i, float scale, int in, int* lo, int* hi, float* frac) {
  float s = (i + 0.5f) * scale - 0.5f;
  if (s < 0) s = 0;
  int l = (int)s;
  if (l > in - 1) l = in - 1;
  *lo = l;
  *hi = l + 1 < in ? l + 1 : in - 1;
  *frac = s - l;
}

static inline void resize_row(const float* __restrict plane, float* __restrict out, int W, int OW, int h0, int h1,
                              float lh, const int* __restrict w0, const int* __restrict w1,
                              const float* __restrict lw) {
  const float* top = plane + (long)h0 * W;
  const float* bottom = plane + (long)h1 * W;
#pragma omp simd
  for (int j = 0; j < OW; ++j) {
    const float t = top[w0[j]] + lw[j] * (top[w1[j]] - top[w0[j]]);
    const float b = bottom[w0[j]] + lw[j] * (bottom[w1[j]] - bottom[w0[j]]);
    out[j] = t + lh * (b - t);
  }
}

extern "C" void resize_bilinear_f32(const float* x, float* y, int N, int C, int H, int W, int OH, int OW) {
  std::vector<int> w0(OW), w1(OW);
  std::vector<float> lw(OW);
  for (int j = 0; j < OW; ++j) source(j, (float)W / OW, W, &w0[j], &w1[j], &lw[j]);
  const float scale_h = (float)H / OH;
  const long rows = (long)N * C * OH;
#pragma omp parallel for schedule(static) if (rows * OW >= PAR_THRESHOLD)
  for (long r = 0; r < rows; ++r) {
    const long p = r / OH;
    int h0, h1;
    float lh;
    source((int)(r % OH), scale_h, H, &h0, &h1, &lh);
    resize_row(x + p * H * W, y + r * OW, W, OW, h0, h1, lh, w0.data(), w1.data(), lw.data());
  }
}
