// @kforge entry: attn_sliding_window_f32
// @kforge about: per query, the window's dot products with 16 partial sums, a vectorisable polynomial exp, SIMD axpys into o; queries across OpenMP threads in QBLOCK-query blocks (neighbouring windows overlap, so a block's keys stay in cache)
// @kforge param: QBLOCK=16 in {4,16,64}
// @kforge param: PAR_THRESHOLD=1048576 in {65536,262144,1048576,4194304}
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// exp(x) for x <= 0 (scores minus their max), clamped at -87: 2^k * p(r), degree-6 Taylor
// polynomial on [-ln2/2, ln2/2], ~1e-7 relative. Branch-free so `omp simd` vectorises it.
#pragma omp declare simd
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest via 1.5 * 2^23
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

// A dot product with 16 independent partial sums: the compiler turns them into vector FMAs.
static inline float dot(const float* __restrict a, const float* __restrict b, int D) {
  float acc[16] = {};
  int d = 0;
  for (; d + 16 <= D; d += 16)
    for (int t = 0; t < 16; ++t) acc[t] += a[d + t] * b[d + t];
  for (; d < D; ++d) acc[0] += a[d] * b[d];
  float s = 0.0f;
  for (int t = 0; t < 16; ++t) s += acc[t];
  return s;
}

// Query i of one batch-head over keys lo .. i; p holds at least i - lo + 1 floats.
static inline void attend(const float* q, const float* k, const float* v, float* __restrict oi, int i, int lo, int D,
                          float scale, float* __restrict p) {
  const int n = i - lo + 1;
  const float* qi = q + (long)i * D;
  float mx = -INFINITY;
  for (int j = 0; j < n; ++j) {
    p[j] = dot(qi, k + (long)(lo + j) * D, D) * scale;
    mx = p[j] > mx ? p[j] : mx;
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; ++j) {
    p[j] = exp_nonpositive(p[j] - mx);
    sum += p[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int d = 0; d < D; ++d) oi[d] = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float w = p[j] * inv;
    const float* vj = v + (long)(lo + j) * D;
#pragma omp simd
    for (int d = 0; d < D; ++d) oi[d] += w * vj[d];
  }
}

extern "C" void attn_sliding_window_f32(const float* q, const float* k, const float* v, float* o, int BH, int S, int D,
                                        int WIN) {
  const float scale = 1.0f / std::sqrt((float)D);
  const int window = WIN < S ? WIN : S, blocks = (S + QBLOCK - 1) / QBLOCK;
#pragma omp parallel if ((long)BH * S * window * D >= PAR_THRESHOLD)
  {
    std::vector<float> p(window);
#pragma omp for schedule(static)
    for (long t = 0; t < (long)BH * blocks; ++t) {
      const long base = t / blocks * S * D;
      const int i0 = (int)(t % blocks) * QBLOCK, i1 = i0 + QBLOCK < S ? i0 + QBLOCK : S;
      for (int i = i0; i < i1; ++i) {
        const int lo = i - WIN + 1 > 0 ? i - WIN + 1 : 0;
        attend(q + base, k + base, v + base, o + base + (long)i * D, i, lo, D, scale, p.data());
      }
    }
  }
}
