// @kforge entry: matmul_batched_f32
// @kforge about: MR x NB tiles of C accumulated in L1 by rank-1 updates (each B row segment serves MR rows, unit-stride SIMD); tiles across OpenMP threads
// @kforge param: MR=4 in {1,2,4,8}
// @kforge param: NB=64 in {32,64,128,256}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
extern "C" void matmul_batched_f32(const float* A, const float* B, float* C, int BATCH, int M, int N, int K) {
  const int row_tiles = (M + MR - 1) / MR, col_tiles = (N + NB - 1) / NB;
  const long tiles = (long)BATCH * row_tiles * col_tiles;
#pragma omp parallel for schedule(static) if ((long)BATCH * M * N * K >= PAR_THRESHOLD)
  for (long t = 0; t < tiles; ++t) {
    const int b = (int)(t / ((long)row_tiles * col_tiles));
    const int m0 = (int)(t / col_tiles % row_tiles) * MR, n0 = (int)(t % col_tiles) * NB;
    const int rows = M - m0 < MR ? M - m0 : MR, cols = N - n0 < NB ? N - n0 : NB;
    const float* __restrict a = A + ((long)b * M + m0) * K;
    const float* __restrict bb = B + (long)b * K * N + n0;
    float acc[MR][NB] = {};
    for (int k = 0; k < K; ++k) {
      const float* __restrict brow = bb + (long)k * N;
      for (int r = 0; r < rows; ++r) {
        const float ar = a[(long)r * K + k];
#pragma omp simd
        for (int j = 0; j < cols; ++j) acc[r][j] += ar * brow[j];
      }
    }
    float* __restrict c = C + ((long)b * M + m0) * N + n0;
    for (int r = 0; r < rows; ++r)
#pragma omp simd
      for (int j = 0; j < cols; ++j) c[(long)r * N + j] = acc[r][j];
  }
}
