// @kforge entry: leaky_relu_f32
// @kforge about: naive: one element at a time, row by row
extern "C" void leaky_relu_f32(const float* x, float* y, int M, int N, float slope) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      const float v = x[(long)m * N + n];
      y[(long)m * N + n] = v >= 0.0f ? v : slope * v;
    }
}
