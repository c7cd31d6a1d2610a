// @kforge entry: topk_sample_reference
// @kforge about: the oracle: a stable partial sort of the indices, weights and the walk in double
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

extern "C" void topk_sample_reference(const float* logits, int* token, int V, int K, float temperature, float u) {
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<double> w(K);
  double total = 0;
  for (int r = 0; r < K; ++r) total += w[r] = std::exp((double(logits[order[r]]) - logits[order[0]]) / temperature);
  double cumulative = 0;
  token[0] = order[K - 1];
  for (int r = 0; r < K; ++r) {
    cumulative += w[r];
    if (cumulative > u * total) {
      token[0] = order[r];
      break;
    }
  }
}
