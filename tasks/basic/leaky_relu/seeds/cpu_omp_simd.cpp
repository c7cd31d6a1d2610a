// @kforge entry: leaky_relu_f32
// @kforge about: one flat SIMD loop over M*N in contiguous chunks across OpenMP threads; branch-free select
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
extern "C" void leaky_relu_f32(const float* __restrict x, float* __restrict y, int M, int N, float slope) {
  const long total = (long)M * N;
  // Memory-bound: a second thread only pays once the data is well past a few hundred KB.
#pragma omp parallel for simd schedule(static) if (total >= PAR_THRESHOLD)
  for (long i = 0; i < total; ++i) {
    const float v = x[i];
    y[i] = v >= 0.0f ? v : slope * v;
  }
}
