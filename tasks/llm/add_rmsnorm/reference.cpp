// @kforge entry: add_rmsnorm_reference
// @kforge about: the oracle: the f32 add, then the norm accumulated in double
#include <cmath>

extern "C" void add_rmsnorm_reference(const float* x, float* residual, const float* w, float* y, int M, int N,
                                      float eps) {
  for (long m = 0; m < M; ++m) {
    float* row = residual + m * N;
    double sum_squares = 0;
    for (long n = 0; n < N; ++n) {
      row[n] = row[n] + x[m * N + n];
      sum_squares += double(row[n]) * row[n];
    }
    const double scale = 1.0 / std::sqrt(sum_squares / N + eps);
    for (long n = 0; n < N; ++n) y[m * N + n] = float(row[n] * scale * w[n]);
  }
}
