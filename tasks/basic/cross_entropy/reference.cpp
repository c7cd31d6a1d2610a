// @kforge entry: cross_entropy_reference
// @kforge about: the oracle: per row max, log-sum-exp in double, mean in double
#include <cmath>

extern "C" void cross_entropy_reference(const float* logits, const int* target, float* loss, int M, int V) {
  double total = 0;
  for (long m = 0; m < M; ++m) {
    const float* row = logits + m * V;
    double max_value = row[0];
    for (long v = 1; v < V; ++v) max_value = std::fmax(max_value, row[v]);
    double sum = 0;
    for (long v = 0; v < V; ++v) sum += std::exp(row[v] - max_value);
    total += std::log(sum) + max_value - row[target[m]];
  }
  loss[0] = float(total / M);
}
