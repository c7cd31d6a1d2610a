// @kforge entry: softmax_f32
// @kforge about: naive: three scalar passes per row (max, exp and sum, divide) with std::exp
#include <cmath>

extern "C" void softmax_f32(const float* x, float* y, int M, int N) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + (long)m * N;
    float* out = y + (long)m * N;
    float max_value = row[0];
    for (int n = 1; n < N; ++n) max_value = std::fmax(max_value, row[n]);
    float sum = 0.0f;
    for (int n = 0; n < N; ++n) {
      out[n] = std::exp(row[n] - max_value);
      sum += out[n];
    }
    for (int n = 0; n < N; ++n) out[n] /= sum;
  }
}
