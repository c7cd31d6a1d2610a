// @kforge entry: gather_f32
// @kforge about: naive: one indexed load per output, row by row
extern "C" void gather_f32(const float* x, const int* idx, float* y, int M, int N, int J) {
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < J; ++j) y[(long)m * J + j] = x[(long)m * N + idx[(long)m * J + j]];
}
