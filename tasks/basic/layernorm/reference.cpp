// @kforge entry: layernorm_reference
// @kforge about: the oracle: two passes in double (mean, then the centred variance)
#include <cmath>

extern "C" void layernorm_reference(const float* x, const float* w, const float* b, float* y, int M, int N, float eps) {
  for (long m = 0; m < M; ++m) {
    const float* row = x + m * N;
    double mean = 0;
    for (long n = 0; n < N; ++n) mean += row[n];
    mean /= N;
    double var = 0;
    for (long n = 0; n < N; ++n) var += (row[n] - mean) * (row[n] - mean);
    var /= N;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (long n = 0; n < N; ++n) y[m * N + n] = float((row[n] - mean) * inv * w[n] + b[n]);
  }
}
