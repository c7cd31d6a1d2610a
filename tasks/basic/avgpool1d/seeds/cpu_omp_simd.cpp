// @kforge entry: avgpool1d_f32
// @kforge about: vectorised across outputs: TILE outputs accumulate tap by tap (contiguous loads when S == 1); rows across OpenMP threads
// @kforge param: TILE=64 in {16,32,64,128}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
extern "C" void avgpool1d_f32(const float* x, float* y, int N, int C, int L, int K, int S) {
  const int OL = (L - K) / S + 1;
  const float inv = 1.0f / K;
#pragma omp parallel for schedule(static) if ((long)N * C * L >= PAR_THRESHOLD)
  for (long r = 0; r < (long)N * C; ++r) {
    const float* __restrict row = x + r * L;
    float* __restrict out = y + r * OL;
    for (int o0 = 0; o0 < OL; o0 += TILE) {
      const int count = OL - o0 < TILE ? OL - o0 : TILE;
      float acc[TILE] = {};
      // Tap k of TILE neighbouring windows: x[(o0 + j) * S + k], a unit-stride vector for S = 1.
      for (int k = 0; k < K; ++k) {
        const float* __restrict tap = row + (long)o0 * S + k;
#pragma omp simd
        for (int j = 0; j < count; ++j) acc[j] += tap[(long)j * S];
      }
#pragma omp simd
      for (int j = 0; j < count; ++j) out[o0 + j] = acc[j] * inv;
    }
  }
}
