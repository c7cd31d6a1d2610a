// @kforge entry: attn_decode_f32
// @kforge about: naive: one query head at a time: scalar scores, std::exp softmax, then the weighted sum of V
#include <cmath>
#include <vector>

extern "C" void attn_decode_f32(const float* q, const float* k_cache, const float* v_cache, float* o, int H, int KVH,
                                int L, int D, float scale) {
  std::vector<float> s(L);
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / KVH);
    float max_score = -INFINITY;
    for (int t = 0; t < L; ++t) {
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += q[(long)h * D + d] * k_cache[((long)t * KVH + g) * D + d];
      s[t] = dot * scale;
      max_score = std::fmax(max_score, s[t]);
    }
    float sum = 0.0f;
    for (int t = 0; t < L; ++t) {
      s[t] = std::exp(s[t] - max_score);
      sum += s[t];
    }
    for (int d = 0; d < D; ++d) o[(long)h * D + d] = 0.0f;
    for (int t = 0; t < L; ++t)
      for (int d = 0; d < D; ++d) o[(long)h * D + d] += s[t] * v_cache[((long)t * KVH + g) * D + d];
    for (int d = 0; d < D; ++d) o[(long)h * D + d] /= sum;
  }
}
