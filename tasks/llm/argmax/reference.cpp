// @kforge entry: argmax_reference
// @kforge about: the oracle: the first index of the largest logit
extern "C" void argmax_reference(const float* logits, int* token, int V) {
  int best = 0;
  for (int n = 1; n < V; ++n)
    if (logits[n] > logits[best]) best = n;
  token[0] = best;
}
