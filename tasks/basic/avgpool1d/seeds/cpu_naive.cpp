// @kforge entry: avgpool1d_f32
// @kforge about: naive: one output at a time, its window summed in f32
extern "C" void avgpool1d_f32(const float* x, float* y, int N, int C, int L, int K, int S) {
  const int OL = (L - K) / S + 1;
  for (long r = 0; r < (long)N * C; ++r)
    for (int o = 0; o < OL; ++o) {
      float sum = 0.0f;
      for (int k = 0; k < K; ++k) sum += x[r * L + (long)o * S + k];
      y[r * OL + o] = sum / K;
    }
}
