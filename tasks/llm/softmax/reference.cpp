// @kforge entry: softmax_reference
// @kforge about: the oracle: scalar, exponentials and sums in double
#include <cmath>

extern "C" void softmax_reference(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    const float* row = x + m * N;
    double max_value = row[0];
    for (long n = 1; n < N; ++n) max_value = std::fmax(max_value, row[n]);
    double sum = 0;
    for (long n = 0; n < N; ++n) sum += std::exp(row[n] - max_value);
    for (long n = 0; n < N; ++n) y[m * N + n] = float(std::exp(row[n] - max_value) / sum);
  }
}
