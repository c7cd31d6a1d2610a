// @kforge entry: attn_prefill_reference
// @kforge about: the oracle: causal scores, softmax and weighted sums in double, one (token, head) at a time
#include <cmath>
#include <vector>

extern "C" void attn_prefill_reference(const float* q, const float* k, const float* v, float* o, int S, int H, int KVH,
                                       int D, float scale) {
  std::vector<double> s(S);
  for (long i = 0; i < S; ++i)
    for (long h = 0; h < H; ++h) {
      const long g = h / (H / KVH);
      const float* qi = q + (i * H + h) * D;
      double max_score = -INFINITY;
      for (long j = 0; j <= i; ++j) {
        double dot = 0;
        for (long d = 0; d < D; ++d) dot += double(qi[d]) * k[(j * KVH + g) * D + d];
        s[j] = dot * scale;
        max_score = std::fmax(max_score, s[j]);
      }
      double sum = 0;
      for (long j = 0; j <= i; ++j) sum += s[j] = std::exp(s[j] - max_score);
      for (long d = 0; d < D; ++d) {
        double acc = 0;
        for (long j = 0; j <= i; ++j) acc += s[j] * v[(j * KVH + g) * D + d];
        o[(i * H + h) * D + d] = float(acc / sum);
      }
    }
}
