// @kforge entry: matmul_bias_relu_f32
// @kforge about: W packed once into K-major panels of NB columns; an MR x NB register tile of accumulators updated by outer products (SIMD along n); tiles across OpenMP threads; bias and ReLU in the epilogue
// @kforge param: MR=4 in {1,2,4,6,8}
// @kforge param: NB=32 in {16,32,64}
#include <vector>

// Panel p holds W's columns n0 = p * NB .. n0 + NB - 1 transposed: panel[k * NB + j] = W[n0 + j, k],
// zero-padded past N, so the inner loop is a unit-stride load of NB weights per k.
static void pack_panels(const float* W, float* packed, int N, int K) {
  const int panels = (N + NB - 1) / NB;
#pragma omp parallel for schedule(static) if ((long)N * K >= 262144)
  for (int p = 0; p < panels; ++p) {
    float* panel = packed + (long)p * K * NB;
    for (int j = 0; j < NB; ++j) {
      const int n = p * NB + j;
      for (int k = 0; k < K; ++k) panel[(long)k * NB + j] = n < N ? W[(long)n * K + k] : 0.0f;
    }
  }
}

// ROWS (<= MR) rows of x against one panel: acc[r][j] += x[m + r, k] * panel[k, j].
template <int ROWS>
static inline void tile(const float* __restrict x, const float* __restrict panel, const float* __restrict b,
                        float* __restrict y, int m, int n0, int N, int K) {
  float acc[ROWS][NB] = {};
  for (int k = 0; k < K; ++k) {
    const float* w = panel + (long)k * NB;
    for (int r = 0; r < ROWS; ++r) {
      const float xr = x[(long)(m + r) * K + k];
#pragma omp simd
      for (int j = 0; j < NB; ++j) acc[r][j] += xr * w[j];
    }
  }
  const int width = N - n0 < NB ? N - n0 : NB;
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < width; ++j) {
      const float v = acc[r][j] + b[n0 + j];
      y[(long)(m + r) * N + n0 + j] = v > 0.0f ? v : 0.0f;
    }
}

template <int ROWS>
static void rows_tail(const float* x, const float* panel, const float* b, float* y, int m, int rows, int n0, int N,
                      int K) {
  if constexpr (ROWS > 0) {
    if (rows == ROWS) return tile<ROWS>(x, panel, b, y, m, n0, N, K);
    rows_tail<ROWS - 1>(x, panel, b, y, m, rows, n0, N, K);
  }
}

extern "C" void matmul_bias_relu_f32(const float* x, const float* W, const float* b, float* y, int M, int N, int K) {
  const int panels = (N + NB - 1) / NB, row_blocks = (M + MR - 1) / MR;
  std::vector<float> packed((long)panels * K * NB);
  pack_panels(W, packed.data(), N, K);
  // Panels outermost within a thread's share: one panel (K * NB floats) stays in L2 across row blocks.
#pragma omp parallel for collapse(2) schedule(static) if ((long)M * N * K >= 1048576)
  for (int p = 0; p < panels; ++p)
    for (int rb = 0; rb < row_blocks; ++rb) {
      const int m = rb * MR, rows = M - m < MR ? M - m : MR;
      rows_tail<MR>(x, packed.data() + (long)p * K * NB, b, y, m, rows, p * NB, N, K);
    }
}
