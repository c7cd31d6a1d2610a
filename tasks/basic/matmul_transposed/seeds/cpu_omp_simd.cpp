// @kforge entry: matmul_transposed_f32
// @kforge about: outer products: MR x NB tiles of C accumulated in L1, row k of A and B read contiguously, unit-stride SIMD; tiles across OpenMP threads
// @kforge param: MR=4 in {1,2,4,8}
// @kforge param: NB=64 in {32,64,128,256}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
extern "C" void matmul_transposed_f32(const float* A, const float* B, float* C, int M, int N, int K) {
  const int row_tiles = (M + MR - 1) / MR, col_tiles = (N + NB - 1) / NB;
#pragma omp parallel for schedule(static) if ((long)M * N * K >= PAR_THRESHOLD)
  for (long t = 0; t < (long)row_tiles * col_tiles; ++t) {
    const int m0 = (int)(t / col_tiles) * MR, n0 = (int)(t % col_tiles) * NB;
    const int rows = M - m0 < MR ? M - m0 : MR, cols = N - n0 < NB ? N - n0 : NB;
    float acc[MR][NB] = {};
    // C[m0.., n0..] += A[k, m0..]^T B[k, n0..] for every k: a rank-1 update of the tile.
    for (int k = 0; k < K; ++k) {
      const float* __restrict arow = A + (long)k * M + m0;
      const float* __restrict brow = B + (long)k * N + n0;
      for (int r = 0; r < rows; ++r) {
        const float ar = arow[r];
#pragma omp simd
        for (int j = 0; j < cols; ++j) acc[r][j] += ar * brow[j];
      }
    }
    float* __restrict c = C + (long)m0 * N + n0;
    for (int r = 0; r < rows; ++r)
#pragma omp simd
      for (int j = 0; j < cols; ++j) c[(long)r * N + j] = acc[r][j];
  }
}
