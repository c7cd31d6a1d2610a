// Exemplar (quant): a kernel for task basic/quantize_q8_0, from its seed seeds/cpu_omp_simd.cpp.
// Semantics: ggml's quantize_row_q8_0_ref per 32-element block: d = amax/127 (stored as f16, nearest even), q = roundf(x * (1/d)) (ties away from zero), q as i32.
// Arguments: x f32[M,K] in, d f16[M,K/32] out (uint16_t bits), q i32[M,K] out, M, K (K % 32 == 0)
// @kforge entry: quantize_q8_0_f32
// @kforge about: a block as two 16-lane vectors (GCC vector extensions): |x| max, and roundf rebuilt from truncating conversion and the exact fraction (roundf itself does not vectorise); BLOCKS-block pieces across OpenMP threads above PAR_THRESHOLD elements
// @kforge param: BLOCKS=256 in {64,256,1024,4096}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
#include <cmath>
#include <cstdint>
#include <cstring>

// The binary16 nearest to f (ties to even); f is finite and below 65520 here.
static inline uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t sign = (bits >> 16) & 0x8000, magnitude = bits & 0x7FFFFFFF;
  if (magnitude < 0x38800000) {  // below 2^-14: a subnormal half, in units of 2^-24
    float a;
    std::memcpy(&a, &magnitude, sizeof a);
    return sign | (uint16_t)std::nearbyint(a * 0x1p24f);
  }
  const uint32_t rebiased = magnitude - 0x38000000;  // exponent bias 127 -> 15
  return sign | (uint16_t)((rebiased + 0xFFF + ((rebiased >> 13) & 1)) >> 13);
}

// One block as two 16-lane vectors (GCC vector extensions: g++ does not vectorise the 32-long
// loops itself, it unrolls them into scalar code first).
typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef int v16i __attribute__((vector_size(64), aligned(4)));

static inline void quantize_blocks(const float* __restrict x, uint16_t* __restrict d, int* __restrict q, long count) {
  for (long b = 0; b < count; ++b) {
    v16f lo, hi;
    std::memcpy(&lo, x + b * 32, sizeof lo);
    std::memcpy(&hi, x + b * 32 + 16, sizeof hi);
    // |x| by clearing the sign bits, then the max of the 32 values.
    const v16i abs_mask = (v16i){} + 0x7FFFFFFF;
    const v16f a = (v16f)((v16i)lo & abs_mask), c = (v16f)((v16i)hi & abs_mask);
    const v16f m = a > c ? a : c;
    float amax = 0.0f;
    for (int j = 0; j < 16; ++j) amax = m[j] > amax ? m[j] : amax;
    const float scale = amax / 127;
    const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
    d[b] = float_to_half(scale);
    // roundf exactly: conversion truncates towards zero, v - trunc(v) is exact in f32, and a
    // fraction of at least one half moves one step away from zero (compares give -1 for true).
    const v16f v0 = lo * id, v1 = hi * id;
    const v16i t0 = __builtin_convertvector(v0, v16i), t1 = __builtin_convertvector(v1, v16i);
    const v16f f0 = v0 - __builtin_convertvector(t0, v16f), f1 = v1 - __builtin_convertvector(t1, v16f);
    const v16i q0 = t0 - (f0 >= 0.5f) + (f0 <= -0.5f), q1 = t1 - (f1 >= 0.5f) + (f1 <= -0.5f);
    std::memcpy(q + b * 32, &q0, sizeof q0);
    std::memcpy(q + b * 32 + 16, &q1, sizeof q1);
  }
}

extern "C" void quantize_q8_0_f32(const float* x, uint16_t* d, int* q, int M, int K) {
  const long total = (long)M * K / 32, pieces = (total + BLOCKS - 1) / BLOCKS;
#pragma omp parallel for schedule(static) if (total * 32 >= PAR_THRESHOLD)
  for (long p = 0; p < pieces; ++p) {
    const long first = p * BLOCKS, count = total - first < BLOCKS ? total - first : BLOCKS;
    quantize_blocks(x + first * 32, d + first, q + first * 32, count);
  }
}
