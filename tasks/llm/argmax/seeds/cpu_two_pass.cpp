// @kforge entry: argmax_f32
// @kforge about: two vectorizable passes instead of one dependent one: the largest value (a SIMD max reduction), then the first index holding it; logits this short stay in L2, so no threads
extern "C" void argmax_f32(const float* logits, int* token, int V) {
  float best = logits[0];
#pragma omp simd reduction(max : best)
  for (int n = 0; n < V; ++n) best = logits[n] > best ? logits[n] : best;
  int n = 0;
  while (logits[n] != best) ++n;
  token[0] = n;
}
