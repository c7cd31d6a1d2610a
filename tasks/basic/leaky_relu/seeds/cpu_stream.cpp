// @kforge entry: leaky_relu_f32
// @kforge about: AVX-512 compare-and-masked-multiply with non-temporal stores (no read-for-ownership of y), 16-aligned chunks per OpenMP thread; scalar tail and fallback
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
#include <immintrin.h>
#include <omp.h>
// y is written once and not read back here: streaming stores skip loading its lines first,
// which cuts the traffic from 12 to 8 bytes an element.
static void run(const float* __restrict x, float* __restrict y, long begin, long end, float slope) {
  long i = begin;
#ifdef __AVX512F__
  const __m512 s = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
  for (; i + 16 <= end; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 neg = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
    _mm512_stream_ps(y + i, _mm512_mask_mul_ps(v, neg, v, s));
  }
  _mm_sfence();
#endif
  for (; i < end; ++i) y[i] = x[i] >= 0.0f ? x[i] : slope * x[i];
}
extern "C" void leaky_relu_f32(const float* x, float* y, int M, int N, float slope) {
  const long total = (long)M * N;
  if (total < PAR_THRESHOLD) { run(x, y, 0, total, slope); return; }
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const long chunk = (total / n + 15) / 16 * 16;  // multiples of 16 keep every thread's stores aligned
    const long b = t * chunk < total ? t * chunk : total, e = (t + 1) * chunk < total ? (t + 1) * chunk : total;
    run(x, y, b, e, slope);
  }
}
