// @kforge entry: upsample_nearest_reference
// @kforge about: the oracle: every output pixel reads its source pixel
extern "C" void upsample_nearest_reference(const float* x, float* y, int N, int C, int H, int W, int S) {
  const long OH = long(H) * S, OW = long(W) * S;
  for (long p = 0; p < long(N) * C; ++p)
    for (long i = 0; i < OH; ++i)
      for (long j = 0; j < OW; ++j) y[(p * OH + i) * OW + j] = x[(p * H + i / S) * W + j / S];
}
