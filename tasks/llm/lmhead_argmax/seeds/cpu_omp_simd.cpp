// @kforge entry: lmhead_argmax_f32
// @kforge about: ROWS vocabulary rows per step share each load of x, SIMD dots; rows across OpenMP threads, each keeping its best, merged lowest index first
// @kforge param: ROWS=4 in {1,2,4,8}
// @kforge param: PAR_THRESHOLD=1048576 in {65536,1048576,16777216,1073741824}

// Whether (value, index) a beats b: larger value, then lower index.
static inline bool beats(float a, int a_index, float b, int b_index) {
  return b_index < 0 || a > b || (a == b && a_index < b_index);
}

extern "C" void lmhead_argmax_f32(const float* W, const float* x, int* token, int V, int K) {
  const int full = V / ROWS * ROWS;
  float best = 0.0f;
  int best_index = -1;
#pragma omp parallel if ((long)V * K >= PAR_THRESHOLD)
  {
    float mine = 0.0f;
    int mine_index = -1;
#pragma omp for schedule(static) nowait
    for (int n0 = 0; n0 < full; n0 += ROWS) {
      float sums[ROWS] = {};
      const float* __restrict rows = W + (long)n0 * K;
#pragma omp simd reduction(+ : sums[:ROWS])
      for (int k = 0; k < K; ++k)
        for (int r = 0; r < ROWS; ++r) sums[r] += rows[(long)r * K + k] * x[k];
      for (int r = 0; r < ROWS; ++r)
        if (beats(sums[r], n0 + r, mine, mine_index)) {
          mine = sums[r];
          mine_index = n0 + r;
        }
    }
#pragma omp for schedule(static) nowait
    for (int n = full; n < V; ++n) {
      const float* __restrict row = W + (long)n * K;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int k = 0; k < K; ++k) sum += row[k] * x[k];
      if (beats(sum, n, mine, mine_index)) {
        mine = sum;
        mine_index = n;
      }
    }
#pragma omp critical
    if (mine_index >= 0 && beats(mine, mine_index, best, best_index)) {
      best = mine;
      best_index = mine_index;
    }
  }
  token[0] = best_index;
}
