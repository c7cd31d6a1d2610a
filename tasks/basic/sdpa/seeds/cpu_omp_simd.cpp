// @kforge entry: sdpa_f32
// @kforge about: ROWS queries at a time share each key and value row (loaded once, used ROWS times); dot products with 16 partial sums, a vectorisable polynomial exp, SIMD axpys into o; query blocks across OpenMP threads
// @kforge param: ROWS=4 in {1,2,4,8}
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

// Queries i0 .. i0 + rows - 1 of one batch-head against all S keys; p is rows x S scratch.
static void attend_block(const float* q, const float* k, const float* v, float* o, int S, int D, int i0, int rows,
                         float scale, float* p) {
  for (int j = 0; j < S; ++j) {
    const float* kj = k + (long)j * D;  // read once, used for every query of the block
    for (int r = 0; r < rows; ++r) p[(long)r * S + j] = dot(q + (long)(i0 + r) * D, kj, D) * scale;
  }
  for (int r = 0; r < rows; ++r) {
    float* pr = p + (long)r * S;
    float mx = pr[0];
    for (int j = 1; j < S; ++j) mx = pr[j] > mx ? pr[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < S; ++j) {
      pr[j] = exp_nonpositive(pr[j] - mx);
      sum += pr[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < S; ++j) pr[j] *= inv;
    float* oi = o + (long)(i0 + r) * D;
#pragma omp simd
    for (int d = 0; d < D; ++d) oi[d] = 0.0f;
  }
  for (int j = 0; j < S; ++j) {
    const float* vj = v + (long)j * D;  // likewise shared by the block's queries
    for (int r = 0; r < rows; ++r) {
      const float w = p[(long)r * S + j];
      float* __restrict oi = o + (long)(i0 + r) * D;
#pragma omp simd
      for (int d = 0; d < D; ++d) oi[d] += w * vj[d];
    }
  }
}

extern "C" void sdpa_f32(const float* q, const float* k, const float* v, float* o, int BH, int S, int D) {
  const float scale = 1.0f / std::sqrt((float)D);
  const int blocks = (S + ROWS - 1) / ROWS;
#pragma omp parallel if ((long)BH * S * S * D >= PAR_THRESHOLD)
  {
    std::vector<float> p((long)ROWS * S);
#pragma omp for schedule(static)
    for (long t = 0; t < (long)BH * blocks; ++t) {
      const long b = t / blocks;
      const int i0 = (int)(t % blocks) * ROWS, rows = S - i0 < ROWS ? S - i0 : ROWS;
      const long base = b * S * D;
      attend_block(q + base, k + base, v + base, o + base, S, D, i0, rows, scale, p.data());
    }
  }
}
