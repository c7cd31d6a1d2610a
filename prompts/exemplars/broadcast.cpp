// Exemplar (broadcast): a kernel for task basic/scale_shift, from its seed seeds/cpu_omp_simd.cpp.
// Semantics: y[n,c,h,w] = a[c] * x[n,c,h,w] + b[c] (per-channel scale and shift broadcast over batch and plane).
// Arguments: x f32[N,C,H,W] in, a f32[C] in, b f32[C] in, y f32[N,C,H,W] out, N, C, H, W
// @kforge entry: scale_shift_f32
// @kforge about: one (n, c) plane at a time with its a and b in registers, planes across OpenMP threads above PAR_THRESHOLD elements, SIMD within a plane
// @kforge param: PAR_THRESHOLD=262144 in {16384,65536,262144,1048576,4194304}

static inline void scale_plane(const float* __restrict in, float* __restrict out, long plane, float a, float b) {
#pragma omp simd
  for (long i = 0; i < plane; ++i) out[i] = a * in[i] + b;
}

extern "C" void scale_shift_f32(const float* x, const float* a, const float* b, float* y, int N, int C, int H, int W) {
  const long plane = (long)H * W, planes = (long)N * C;
  if (planes * plane < PAR_THRESHOLD) {
    for (long p = 0; p < planes; ++p) scale_plane(x + p * plane, y + p * plane, plane, a[p % C], b[p % C]);
    return;
  }
#pragma omp parallel for schedule(static)
  for (long p = 0; p < planes; ++p) scale_plane(x + p * plane, y + p * plane, plane, a[p % C], b[p % C]);
}
