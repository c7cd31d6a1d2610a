// @kforge entry: groupnorm_f32
// @kforge about: naive: per (sample, group), scalar passes for the mean, the variance and the normalize, in f32
#include <cmath>

extern "C" void groupnorm_f32(const float* x, const float* gamma, const float* beta, float* y, int N, int C, int HW,
                              int G, float eps) {
  const int channels = C / G;
  const long per_group = (long)channels * HW;
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < G; ++g) {
      const long start = ((long)n * C + (long)g * channels) * HW;
      float sum = 0.0f;
      for (long i = 0; i < per_group; ++i) sum += x[start + i];
      const float mean = sum / per_group;
      float sq = 0.0f;
      for (long i = 0; i < per_group; ++i) sq += (x[start + i] - mean) * (x[start + i] - mean);
      const float inv = 1.0f / std::sqrt(sq / per_group + eps);
      for (long i = 0; i < per_group; ++i) {
        const int c = g * channels + (int)(i / HW);
        y[start + i] = (x[start + i] - mean) * inv * gamma[c] + beta[c];
      }
    }
}
