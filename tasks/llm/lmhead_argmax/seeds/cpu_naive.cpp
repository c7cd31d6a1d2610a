// @kforge entry: lmhead_argmax_f32
// @kforge about: naive: one scalar float dot product per vocabulary row, keeping the first best
extern "C" void lmhead_argmax_f32(const float* W, const float* x, int* token, int V, int K) {
  float best = 0.0f;
  int best_index = -1;
  for (int n = 0; n < V; ++n) {
    float logit = 0.0f;
    for (int k = 0; k < K; ++k) logit += W[(long)n * K + k] * x[k];
    if (best_index < 0 || logit > best) {
      best = logit;
      best_index = n;
    }
  }
  token[0] = best_index;
}
