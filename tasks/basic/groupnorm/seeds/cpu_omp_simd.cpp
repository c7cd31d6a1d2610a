// @kforge entry: groupnorm_f32
// @kforge about: (sample, group) pairs across OpenMP threads; SIMD reductions; the affine folded into one scale and shift per channel
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <cmath>

extern "C" void groupnorm_f32(const float* x, const float* gamma, const float* beta, float* y, int N, int C, int HW,
                              int G, float eps) {
  const int channels = C / G;
  const long per_group = (long)channels * HW;
#pragma omp parallel for schedule(static) if ((long)N * C * HW >= PAR_THRESHOLD)
  for (long ng = 0; ng < (long)N * G; ++ng) {
    const long start = ng * per_group;  // groups are contiguous: [N, G, C/G, HW]
    const float* __restrict in = x + start;
    float* __restrict out = y + start;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (long i = 0; i < per_group; ++i) sum += in[i];
    const float mean = sum / per_group;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (long i = 0; i < per_group; ++i) sq += (in[i] - mean) * (in[i] - mean);
    const float inv = 1.0f / std::sqrt(sq / per_group + eps);
    // y = x * scale + shift with scale = gamma * inv and shift = beta - mean * scale: one FMA an element.
    const int c0 = (int)(ng % G) * channels;
    for (int c = 0; c < channels; ++c) {
      const float scale = gamma[c0 + c] * inv, shift = beta[c0 + c] - mean * scale;
      const float* __restrict a = in + (long)c * HW;
      float* __restrict o = out + (long)c * HW;
#pragma omp simd
      for (int p = 0; p < HW; ++p) o[p] = a[p] * scale + shift;
    }
  }
}
