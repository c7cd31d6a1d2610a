// @kforge entry: scale_unrolled
// @kforge about: chunks of CHUNK elements, the inner loop unrolled UNROLL times
// @kforge param: UNROLL=2 in {1,2,4,8}
// @kforge param: CHUNK=64 in {16,64,256,1024}
extern "C" void scale_unrolled(const float* x, float* y, int N, float alpha) {
  for (int start = 0; start < N; start += CHUNK) {
    const int end = start + CHUNK < N ? start + CHUNK : N;
    int i = start;
    for (; i + UNROLL <= end; i += UNROLL)
      for (int u = 0; u < UNROLL; ++u) y[i + u] = alpha * x[i + u];
    for (; i < end; ++i) y[i] = alpha * x[i];
  }
}
