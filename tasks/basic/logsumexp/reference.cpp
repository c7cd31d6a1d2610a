// @kforge entry: logsumexp_reference
// @kforge about: the oracle: max, then the shifted sum of exponentials in double
#include <cmath>

extern "C" void logsumexp_reference(const float* x, float* y, int M, int N) {
  for (long m = 0; m < M; ++m) {
    const float* row = x + m * N;
    double mx = row[0];
    for (long n = 1; n < N; ++n) mx = row[n] > mx ? row[n] : mx;
    double sum = 0;
    for (long n = 0; n < N; ++n) sum += std::exp(row[n] - mx);
    y[m] = float(mx + std::log(sum));
  }
}
