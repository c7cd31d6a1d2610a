// @kforge entry: topk_sample_f32
// @kforge about: naive: K full passes, each finding the next logit after the previous pick; then the weighted walk
#include <cmath>

// Whether (a, a_index) comes before (b, b_index): larger value, then lower index.
static bool precedes(float a, int a_index, float b, int b_index) { return a > b || (a == b && a_index < b_index); }

extern "C" void topk_sample_f32(const float* logits, int* token, int V, int K, float temperature, float u) {
  int chosen[128];
  for (int r = 0; r < K; ++r) {
    int best = -1;
    for (int n = 0; n < V; ++n) {
      if (r > 0 && !precedes(logits[chosen[r - 1]], chosen[r - 1], logits[n], n)) continue;
      if (best < 0 || precedes(logits[n], n, logits[best], best)) best = n;
    }
    chosen[r] = best;
  }
  float w[128], total = 0.0f;
  for (int r = 0; r < K; ++r) {
    w[r] = std::exp((logits[chosen[r]] - logits[chosen[0]]) / temperature);
    total += w[r];
  }
  float cumulative = 0.0f;
  token[0] = chosen[K - 1];
  for (int r = 0; r < K; ++r) {
    cumulative += w[r];
    if (cumulative > u * total) {
      token[0] = chosen[r];
      return;
    }
  }
}
