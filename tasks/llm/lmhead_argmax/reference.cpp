// @kforge entry: lmhead_argmax_reference
// @kforge about: the oracle: logits in double, then the first index of the largest
extern "C" void lmhead_argmax_reference(const float* W, const float* x, int* token, int V, int K) {
  double best = 0;
  int best_index = -1;
  for (long n = 0; n < V; ++n) {
    double logit = 0;
    for (long k = 0; k < K; ++k) logit += double(W[n * K + k]) * x[k];
    if (best_index < 0 || logit > best) {
      best = logit;
      best_index = int(n);
    }
  }
  token[0] = best_index;
}
