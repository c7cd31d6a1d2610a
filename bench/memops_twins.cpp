// The memory twins of the memory-bound llm ops, for bench_memops: each has its op's signature and
// moves the bytes the op must move (reads its inputs once, writes its outputs once, in place where
// the op works in place) with no arithmetic to speak of, as a copy does: OpenMP over the flat index
// (static, one contiguous range per thread) and, on a separate output, non-temporal stores, as
// the evaluator's copy probe does. Timed by the evaluator as the baseline of each op's kernels,
// call for call under the same cache flush, the twin is the copy roofline of that op at that
// moment of that run, so a kernel's "speedup" over it is the share of that roofline it reaches.
// bench_memops prepends the kernel-contract line naming the entry of the op it times.
#include <cstdint>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace {

// Threads cost microseconds to wake: below a MiB one thread streams, as the ops' seeds do.
constexpr long kParallelFloats = 1 << 18;

// out[i] = a[i] (+ b[i]) for i in [0, n), also kept in keep[i] (plain stores) where keep is given:
// the body in 32-byte non-temporal stores where AVX is there and out is 32-byte aligned.
void stream(float* out, const float* a, const float* b, float* keep, long n) {
#pragma omp parallel if (n >= kParallelFloats)
  {
    long i = 0;
#if defined(__AVX__)
    if ((reinterpret_cast<std::uintptr_t>(out) & 31) == 0) {
#pragma omp for schedule(static) nowait
      for (long j = 0; j < n / 8; ++j) {
        __m256 v = _mm256_loadu_ps(a + 8 * j);
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + 8 * j));
        if (keep) _mm256_storeu_ps(keep + 8 * j, v);
        _mm256_stream_ps(out + 8 * j, v);
      }
      _mm_sfence();
      i = n / 8 * 8;
    }
#endif
#pragma omp for schedule(static)
    for (long j = i; j < n; ++j) {
      const float v = b ? a[j] + b[j] : a[j];
      if (keep) keep[j] = v;
      out[j] = v;
    }
  }
}

// p[i] = -p[i] for i in [0, n): read and written in place, as an in-place op must.
void negate(float* p, long n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelFloats)
  for (long i = 0; i < n; ++i) p[i] = -p[i];
}

}  // namespace

extern "C" void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float) {
  stream(y, x, nullptr, nullptr, (long)M * N);
  (void)w;  // N floats, in cache after the first row: the op's bytes count them once
}

extern "C" void add_rmsnorm_f32(const float* x, float* residual, const float* w, float* y, int M, int N, float) {
  stream(y, x, residual, residual, (long)M * N);  // residual += x; y = residual
  (void)w;
}

extern "C" void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  stream(y, gate, up, nullptr, (long)M * N);
}

extern "C" void softmax_f32(const float* x, float* y, int M, int N) { stream(y, x, nullptr, nullptr, (long)M * N); }

extern "C" void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float) {
  negate(q, (long)M * H * D);
  negate(k, (long)M * KVH * D);
  (void)pos;
}

extern "C" void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int, int KVH, int D,
                              int pos) {
  const long n = (long)KVH * D;
  stream(k_cache + pos * n, k, nullptr, nullptr, n);
  stream(v_cache + pos * n, v, nullptr, nullptr, n);
}
