// @kforge entry: upsample_nearest_f32
// @kforge about: naive: one output element at a time, its source from integer divisions
extern "C" void upsample_nearest_f32(const float* x, float* y, int N, int C, int H, int W, int S) {
  const long OH = (long)H * S, OW = (long)W * S;
  for (long p = 0; p < (long)N * C; ++p)
    for (long i = 0; i < OH; ++i)
      for (long j = 0; j < OW; ++j) y[(p * OH + i) * OW + j] = x[(p * H + i / S) * W + j / S];
}
