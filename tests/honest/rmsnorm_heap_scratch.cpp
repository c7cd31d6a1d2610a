// @kforge entry: rmsnorm_f32
// @kforge about: two passes through heap scratch memory allocated and freed on every call
#include <cmath>
#include <vector>
extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps) {
  std::vector<double> sums(M, 0.0);
  for (long i = 0; i < (long)M * N; ++i) sums[i / N] += double(x[i]) * x[i];
  std::vector<float> scales(M);
  for (int m = 0; m < M; ++m) scales[m] = 1.0f / std::sqrt(float(sums[m] / N) + eps);
  for (long i = 0; i < (long)M * N; ++i) y[i] = x[i] * scales[i / N] * w[i % N];
}
