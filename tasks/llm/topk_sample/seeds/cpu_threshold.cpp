// @kforge entry: topk_sample_f32
// @kforge about: one pass keeping a sorted list of the K best; blocks of SPAN logits whose SIMD max does not beat the K-th are skipped whole
// @kforge param: SPAN=64 in {16,32,64,128}
#include <cmath>

extern "C" void topk_sample_f32(const float* logits, int* token, int V, int K, float temperature, float u) {
  float best[128];
  int best_index[128];
  int count = 0;
  // Indices only grow, so a logit equal to the K-th never displaces it: "beats" is plain >.
  auto offer = [&](float v, int n) {
    if (count == K && !(v > best[K - 1])) return;
    int r = count < K ? count++ : K - 1;
    for (; r > 0 && v > best[r - 1]; --r) {
      best[r] = best[r - 1];
      best_index[r] = best_index[r - 1];
    }
    best[r] = v;
    best_index[r] = n;
  };
  int n = 0;
  for (; n < V && count < K; ++n) offer(logits[n], n);
  for (; n + SPAN <= V; n += SPAN) {
    float block_max = logits[n];
#pragma omp simd reduction(max : block_max)
    for (int j = 0; j < SPAN; ++j) block_max = logits[n + j] > block_max ? logits[n + j] : block_max;
    if (!(block_max > best[K - 1])) continue;
    for (int j = 0; j < SPAN; ++j) offer(logits[n + j], n + j);
  }
  for (; n < V; ++n) offer(logits[n], n);

  float w[128], total = 0.0f;
  for (int r = 0; r < K; ++r) {
    w[r] = std::exp((best[r] - best[0]) / temperature);
    total += w[r];
  }
  float cumulative = 0.0f;
  token[0] = best_index[K - 1];
  for (int r = 0; r < K; ++r) {
    cumulative += w[r];
    if (cumulative > u * total) {
      token[0] = best_index[r];
      return;
    }
  }
}
