// @kforge entry: attn_decode_reference
// @kforge about: the oracle: scores, softmax and the weighted sum in double, one head at a time
#include <cmath>
#include <vector>

extern "C" void attn_decode_reference(const float* q, const float* k_cache, const float* v_cache, float* o, int H,
                                      int KVH, int L, int D, float scale) {
  std::vector<double> s(L);
  for (long h = 0; h < H; ++h) {
    const long g = h / (H / KVH);
    double max_score = -INFINITY;
    for (long t = 0; t < L; ++t) {
      double dot = 0;
      for (long d = 0; d < D; ++d) dot += double(q[h * D + d]) * k_cache[(t * KVH + g) * D + d];
      s[t] = dot * scale;
      max_score = std::fmax(max_score, s[t]);
    }
    double sum = 0;
    for (long t = 0; t < L; ++t) sum += s[t] = std::exp(s[t] - max_score);
    for (long d = 0; d < D; ++d) {
      double acc = 0;
      for (long t = 0; t < L; ++t) acc += s[t] * v_cache[(t * KVH + g) * D + d];
      o[h * D + d] = float(acc / sum);
    }
  }
}
