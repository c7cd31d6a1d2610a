// @kforge entry: attn_decode_f32
// @kforge about: the G = H/KVH query heads of a KV head together, so each K and V row is read once; SIMD dots and a polynomial exp; KV heads across OpenMP threads
// @kforge param: PAR_THRESHOLD=16777216 in {65536,262144,1048576,4194304,16777216}
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

extern "C" void attn_decode_f32(const float* q, const float* k_cache, const float* v_cache, float* o, int H, int KVH,
                                int L, int D, float scale) {
  const int group = H / KVH;
  const long row = (long)KVH * D;  // floats from one position to the next in a cache
#pragma omp parallel if ((long)L * KVH * D >= PAR_THRESHOLD)
  {
    std::vector<float> scores((long)group * L);
#pragma omp for schedule(static)
    for (int g = 0; g < KVH; ++g) {
      const float* __restrict qg = q + (long)g * group * D;
      for (int t = 0; t < L; ++t) {
        const float* __restrict k = k_cache + t * row + (long)g * D;
        for (int i = 0; i < group; ++i) {
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int d = 0; d < D; ++d) dot += qg[(long)i * D + d] * k[d];
          scores[(long)i * L + t] = dot * scale;
        }
      }
      for (int i = 0; i < group; ++i) {
        float* __restrict s = scores.data() + (long)i * L;
        float max_score = s[0];
#pragma omp simd reduction(max : max_score)
        for (int t = 0; t < L; ++t) max_score = s[t] > max_score ? s[t] : max_score;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int t = 0; t < L; ++t) {
          s[t] = exp_nonpositive(s[t] - max_score);
          sum += s[t];
        }
        const float inverse = 1.0f / sum;
#pragma omp simd
        for (int t = 0; t < L; ++t) s[t] *= inverse;
      }
      float* __restrict og = o + (long)g * group * D;
      std::memset(og, 0, sizeof(float) * group * D);
      for (int t = 0; t < L; ++t) {
        const float* __restrict v = v_cache + t * row + (long)g * D;
        for (int i = 0; i < group; ++i) {
          const float p = scores[(long)i * L + t];
#pragma omp simd
          for (int d = 0; d < D; ++d) og[(long)i * D + d] += p * v[d];
        }
      }
    }
  }
}
