// @kforge entry: sdpa_f32
// @kforge about: naive: per query, all scores in a buffer, softmax, then o accumulated row by row of v
#include <cmath>
#include <vector>

extern "C" void sdpa_f32(const float* q, const float* k, const float* v, float* o, int BH, int S, int D) {
  const float scale = 1.0f / std::sqrt((float)D);
  std::vector<float> p(S);
  for (long b = 0; b < BH; ++b)
    for (long i = 0; i < S; ++i) {
      const float* qi = q + (b * S + i) * D;
      float* oi = o + (b * S + i) * D;
      float mx = -INFINITY;
      for (long j = 0; j < S; ++j) {
        float dot = 0.0f;
        for (long d = 0; d < D; ++d) dot += qi[d] * k[(b * S + j) * D + d];
        p[j] = dot * scale;
        mx = std::fmax(mx, p[j]);
      }
      float sum = 0.0f;
      for (long j = 0; j < S; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      for (long d = 0; d < D; ++d) oi[d] = 0.0f;
      for (long j = 0; j < S; ++j)
        for (long d = 0; d < D; ++d) oi[d] += p[j] * v[(b * S + j) * D + d];
      for (long d = 0; d < D; ++d) oi[d] /= sum;
    }
}
