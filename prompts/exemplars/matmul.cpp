// Exemplar for the matmul category: task basic/matmul_batched.
// C[b] = A[b] B[b]: C[b,m,n] = sum_k A[b,m,k] * B[b,k,n], all row-major.
// Arguments: A f32[BATCH,M,K] in, B f32[BATCH,K,N] in, C f32[BATCH,M,N] out, BATCH, M, N, K.
// @kforge entry: matmul_batched_f32
// @kforge about: MR x (NV x 16) tiles of C held in registers at full size (each B row segment serves MR rows per k), masked-size edge tiles; tiles across OpenMP threads
// @kforge param: MR=4 in {1,2,4,6,8}
// @kforge param: NV=2 in {1,2,4}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
constexpr int LANES = 16;
constexpr int NB = NV * LANES;

// C tile [R, NB] at full size: R * NV accumulator vectors stay in registers; each B row segment
// (NV vectors) is loaded once per k and serves R rows.
template <int R>
static inline void full_tile(const float* __restrict a, const float* __restrict b, float* __restrict c, int N, int K) {
  float acc[R][NB] = {};
  for (int k = 0; k < K; ++k) {
    const float* __restrict brow = b + (long)k * N;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float ar = a[(long)r * K + k];
#pragma omp simd
      for (int j = 0; j < NB; ++j) acc[r][j] += ar * brow[j];
    }
  }
  for (int r = 0; r < R; ++r)
#pragma omp simd
    for (int j = 0; j < NB; ++j) c[(long)r * N + j] = acc[r][j];
}

static inline void edge_tile(const float* __restrict a, const float* __restrict b, float* __restrict c, int rows, int cols, int N, int K) {
  float acc[MR][NB] = {};
  for (int k = 0; k < K; ++k) {
    const float* __restrict brow = b + (long)k * N;
    for (int r = 0; r < rows; ++r) {
      const float ar = a[(long)r * K + k];
#pragma omp simd
      for (int j = 0; j < cols; ++j) acc[r][j] += ar * brow[j];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) c[(long)r * N + j] = acc[r][j];
}

extern "C" void matmul_batched_f32(const float* A, const float* B, float* C, int BATCH, int M, int N, int K) {
  const int row_tiles = (M + MR - 1) / MR, col_tiles = (N + NB - 1) / NB;
  const long tiles = (long)BATCH * row_tiles * col_tiles;
#pragma omp parallel for schedule(static) if ((long)BATCH * M * N * K >= PAR_THRESHOLD)
  for (long t = 0; t < tiles; ++t) {
    const int b = (int)(t / ((long)row_tiles * col_tiles));
    const int m0 = (int)(t / col_tiles % row_tiles) * MR, n0 = (int)(t % col_tiles) * NB;
    const int rows = M - m0 < MR ? M - m0 : MR, cols = N - n0 < NB ? N - n0 : NB;
    const float* a = A + ((long)b * M + m0) * K;
    const float* bb = B + (long)b * K * N + n0;
    float* c = C + ((long)b * M + m0) * N + n0;
    if (rows == MR && cols == NB) full_tile<MR>(a, bb, c, N, K);
    else edge_tile(a, bb, c, rows, cols, N, K);
  }
}
