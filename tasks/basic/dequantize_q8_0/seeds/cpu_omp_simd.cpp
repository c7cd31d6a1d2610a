// @kforge entry: dequantize_q8_0_f32
// @kforge about: scales converted with F16C's _cvtsh_ss where available; 32 int8 widened and scaled per block in one SIMD loop; BLOCKS-block pieces across OpenMP threads above PAR_THRESHOLD elements
// @kforge param: BLOCKS=256 in {64,256,1024,4096}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
#include <cstdint>
#include <cstring>
#if defined(__F16C__)
#include <immintrin.h>
#endif

struct block_q8_0 {
  uint16_t d;
  int8_t qs[32];
};

static inline float half_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  // The half's fields shifted into a float's and rebiased by 2^112 (also normalises subnormals).
  uint32_t bits = (uint32_t)(h & 0x7FFF) << 13;
  float magnitude;
  std::memcpy(&magnitude, &bits, sizeof magnitude);
  magnitude *= 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) {
    bits = 0x7F800000u | ((uint32_t)(h & 0x3FF) << 13);
    std::memcpy(&magnitude, &bits, sizeof magnitude);
  }
  return (h & 0x8000) ? -magnitude : magnitude;
#endif
}

static inline void dequantize_blocks(const block_q8_0* __restrict blocks, float* __restrict out, long count) {
  for (long b = 0; b < count; ++b) {
    const float d = half_to_float(blocks[b].d);
    const int8_t* qs = blocks[b].qs;  // 2-byte aligned: the compiler uses unaligned loads
#pragma omp simd
    for (int j = 0; j < 32; ++j) out[b * 32 + j] = (float)qs[j] * d;
  }
}

extern "C" void dequantize_q8_0_f32(const void* W, float* y, int M, int K) {
  const block_q8_0* blocks = static_cast<const block_q8_0*>(W);
  const long total = (long)M * K / 32, pieces = (total + BLOCKS - 1) / BLOCKS;
#pragma omp parallel for schedule(static) if (total * 32 >= PAR_THRESHOLD)
  for (long p = 0; p < pieces; ++p) {
    const long first = p * BLOCKS, count = total - first < BLOCKS ? total - first : BLOCKS;
    dequantize_blocks(blocks + first, y + first * 32, count);
  }
}
