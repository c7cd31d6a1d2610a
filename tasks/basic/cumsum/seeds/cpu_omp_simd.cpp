// @kforge entry: cumsum_f32
// @kforge about: 8-wide in-register scans (three shift-and-add steps, GCC vector extensions) carried across the row; rows across OpenMP threads, or for fewer rows than 4 per thread, CHUNK-element pieces of a row scanned in parallel from their chunk-sum offsets
// @kforge param: CHUNK=16384 in {4096,16384,65536}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
#include <omp.h>
#include <vector>

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

// Inclusive scan of count elements starting from carry; returns the last sum. Within each group of
// 8, log2(8) = 3 steps add the vector shifted by 1, 2 and 4 lanes (zeros shifted in); then the
// carry (the previous group's last sum, in every lane) is added. The only serial dependency is
// one add and one broadcast per 8 elements.
static inline float scan_run(const float* __restrict in, float* __restrict out, long count, float carry) {
  const v8 zero = {};
  v8 c = zero + carry;
  long n = 0;
  for (; n + 8 <= count; n += 8) {
    v8 v;
    __builtin_memcpy(&v, in + n, sizeof v);
    v += __builtin_shuffle(v, zero, (v8i){8, 0, 1, 2, 3, 4, 5, 6});
    v += __builtin_shuffle(v, zero, (v8i){8, 8, 0, 1, 2, 3, 4, 5});
    v += __builtin_shuffle(v, zero, (v8i){8, 8, 8, 8, 0, 1, 2, 3});
    v += c;
    __builtin_memcpy(out + n, &v, sizeof v);
    c = __builtin_shuffle(v, (v8i){7, 7, 7, 7, 7, 7, 7, 7});
  }
  carry = c[0];
  for (; n < count; ++n) {
    carry += in[n];
    out[n] = carry;
  }
  return carry;
}

// 16 independent partial sums: a plain loop the compiler turns into vector adds.
static inline float chunk_sum(const float* __restrict in, long count) {
  float acc[16] = {};
  long n = 0;
  for (; n + 16 <= count; n += 16)
    for (int j = 0; j < 16; ++j) acc[j] += in[n + j];
  for (; n < count; ++n) acc[0] += in[n];
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

extern "C" void cumsum_f32(const float* x, float* y, int M, int N) {
  const bool parallel = (long)M * N >= PAR_THRESHOLD;
  if (!parallel || M >= 4 * omp_get_max_threads()) {
    // Enough rows: one pass, a row per iteration.
#pragma omp parallel for schedule(static) if (parallel)
    for (int m = 0; m < M; ++m) scan_run(x + (long)m * N, y + (long)m * N, N, 0.0f);
    return;
  }
  // Few long rows: sum every chunk, scan the chunk sums, then scan every chunk from its offset.
  const long chunks = ((long)N + CHUNK - 1) / CHUNK;
  std::vector<float> offset((long)M * chunks);
#pragma omp parallel for schedule(static)
  for (long c = 0; c < (long)M * chunks; ++c) {
    const long m = c / chunks, begin = (c % chunks) * CHUNK, end = begin + CHUNK < N ? begin + CHUNK : N;
    offset[c] = chunk_sum(x + m * N + begin, end - begin);
  }
  for (long m = 0; m < M; ++m) {
    float run = 0.0f;
    for (long c = 0; c < chunks; ++c) {
      const float s = offset[m * chunks + c];
      offset[m * chunks + c] = run;
      run += s;
    }
  }
#pragma omp parallel for schedule(static)
  for (long c = 0; c < (long)M * chunks; ++c) {
    const long m = c / chunks, begin = (c % chunks) * CHUNK, end = begin + CHUNK < N ? begin + CHUNK : N;
    scan_run(x + m * N + begin, y + m * N + begin, end - begin, offset[c]);
  }
}
