// @kforge entry: groupnorm_reference
// @kforge about: the oracle: per (sample, group), mean then centred variance in double
#include <cmath>

extern "C" void groupnorm_reference(const float* x, const float* gamma, const float* beta, float* y, int N, int C,
                                    int HW, int G, float eps) {
  const long per_group = long(C / G) * HW;
  for (long n = 0; n < N; ++n)
    for (long g = 0; g < G; ++g) {
      const long start = (n * C + g * (C / G)) * HW;
      double mean = 0;
      for (long i = 0; i < per_group; ++i) mean += x[start + i];
      mean /= per_group;
      double var = 0;
      for (long i = 0; i < per_group; ++i) var += (x[start + i] - mean) * (x[start + i] - mean);
      var /= per_group;
      const double inv = 1.0 / std::sqrt(var + eps);
      for (long i = 0; i < per_group; ++i) {
        const long c = g * (C / G) + i / HW;
        y[start + i] = float((x[start + i] - mean) * inv * gamma[c] + beta[c]);
      }
    }
}
