// @kforge entry: attn_prefill_f32
// @kforge about: naive: one (token, head) at a time: scalar causal scores, std::exp softmax, then the weighted sum of V
#include <cmath>
#include <vector>

extern "C" void attn_prefill_f32(const float* q, const float* k, const float* v, float* o, int S, int H, int KVH, int D,
                                 float scale) {
  std::vector<float> s(S);
  for (int i = 0; i < S; ++i)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / KVH);
      const float* qi = q + ((long)i * H + h) * D;
      float* oi = o + ((long)i * H + h) * D;
      float max_score = -INFINITY;
      for (int j = 0; j <= i; ++j) {
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot += qi[d] * k[((long)j * KVH + g) * D + d];
        s[j] = dot * scale;
        max_score = std::fmax(max_score, s[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j <= i; ++j) {
        s[j] = std::exp(s[j] - max_score);
        sum += s[j];
      }
      for (int d = 0; d < D; ++d) oi[d] = 0.0f;
      for (int j = 0; j <= i; ++j)
        for (int d = 0; d < D; ++d) oi[d] += s[j] * v[((long)j * KVH + g) * D + d];
      for (int d = 0; d < D; ++d) oi[d] /= sum;
    }
}
