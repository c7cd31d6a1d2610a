// @kforge entry: logsumexp_f32
// @kforge about: naive: a max pass and a std::exp pass per row, f32 accumulators
#include <cmath>

extern "C" void logsumexp_f32(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    const float* row = x + m * N;
    float mx = row[0];
    for (long n = 1; n < N; ++n) mx = row[n] > mx ? row[n] : mx;
    float sum = 0.0f;
    for (long n = 0; n < N; ++n) sum += std::exp(row[n] - mx);
    y[m] = mx + std::log(sum);
  }
}
