// @kforge entry: attn_prefill_f32
// @kforge about: the G = H/KVH heads of a KV head together per token, so each K and V row is read once per token; SIMD dots, polynomial exp; (KV head, token) pairs across OpenMP threads
// @kforge param: PAR_THRESHOLD=1073741824 in {1048576,16777216,268435456,1073741824}
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// exp(x) for x <= 0 (scores minus their max), as in llm/softmax's seed: ~1e-7 relative.
#pragma omp declare simd
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693145752f - k * 1.42860677e-6f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Threads are off by default (PAR_THRESHOLD above every bench shape's S*S*H*D): on the shared
// 2-core machine this was tuned on, waiting for a second busy core cost more than it gave.
extern "C" void attn_prefill_f32(const float* q, const float* k, const float* v, float* o, int S, int H, int KVH, int D,
                                 float scale) {
  const int group = H / KVH;
  const long row = (long)KVH * D;  // floats from one token to the next in k and v
#pragma omp parallel if ((long)S * S * H * D >= PAR_THRESHOLD)
  {
    std::vector<float> scores((long)group * S);
    // Later tokens have more keys: dynamic scheduling evens the threads out.
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int g = 0; g < KVH; ++g)
      for (int i = 0; i < S; ++i) {
        const int n = i + 1;
        const float* __restrict qi = q + ((long)i * H + (long)g * group) * D;
        for (int j = 0; j < n; ++j) {
          const float* __restrict kj = k + j * row + (long)g * D;
          for (int e = 0; e < group; ++e) {
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < D; ++d) dot += qi[(long)e * D + d] * kj[d];
            scores[(long)e * S + j] = dot * scale;
          }
        }
        for (int e = 0; e < group; ++e) {
          float* __restrict s = scores.data() + (long)e * S;
          float max_score = s[0];
#pragma omp simd reduction(max : max_score)
          for (int j = 0; j < n; ++j) max_score = s[j] > max_score ? s[j] : max_score;
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int j = 0; j < n; ++j) {
            s[j] = exp_nonpositive(s[j] - max_score);
            sum += s[j];
          }
          const float inverse = 1.0f / sum;
#pragma omp simd
          for (int j = 0; j < n; ++j) s[j] *= inverse;
        }
        float* __restrict oi = o + ((long)i * H + (long)g * group) * D;
        std::memset(oi, 0, sizeof(float) * group * D);
        for (int j = 0; j < n; ++j) {
          const float* __restrict vj = v + j * row + (long)g * D;
          for (int e = 0; e < group; ++e) {
            const float p = scores[(long)e * S + j];
#pragma omp simd
            for (int d = 0; d < D; ++d) oi[(long)e * D + d] += p * vj[d];
          }
        }
      }
  }
}
