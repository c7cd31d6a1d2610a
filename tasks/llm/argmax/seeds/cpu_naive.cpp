// @kforge entry: argmax_f32
// @kforge about: naive: one scalar pass keeping the first best
extern "C" void argmax_f32(const float* logits, int* token, int V) {
  float best = logits[0];
  int best_index = 0;
  for (int n = 1; n < V; ++n)
    if (logits[n] > best) {
      best = logits[n];
      best_index = n;
    }
  token[0] = best_index;
}
