// @kforge entry: cross_entropy_f32
// @kforge about: naive: per row a scalar max, a scalar sum of std::exp, then log; f32 throughout
#include <cmath>

extern "C" void cross_entropy_f32(const float* logits, const int* target, float* loss, int M, int V) {
  float total = 0.0f;
  for (int m = 0; m < M; ++m) {
    const float* row = logits + (long)m * V;
    float max_value = row[0];
    for (int v = 1; v < V; ++v) max_value = std::fmax(max_value, row[v]);
    float sum = 0.0f;
    for (int v = 0; v < V; ++v) sum += std::exp(row[v] - max_value);
    total += std::log(sum) + max_value - row[target[m]];
  }
  loss[0] = total / M;
}
