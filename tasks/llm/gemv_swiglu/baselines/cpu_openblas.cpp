// @kforge entry: gemv_swiglu_openblas
// @kforge about: the unfused path users run: OpenBLAS cblas_sgemv for W1 x and W3 x, then SwiGLU
#include <cblas.h>

#include <cmath>
#include <vector>

extern "C" void gemv_swiglu_openblas(const float* W1, const float* W3, const float* x, float* y, int N, int K) {
  static thread_local std::vector<float> up;
  up.resize(N);
  cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W1, K, x, 1, 0.0f, y, 1);
  cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W3, K, x, 1, 0.0f, up.data(), 1);
  for (int n = 0; n < N; ++n) y[n] = y[n] / (1.0f + std::exp(-y[n])) * up[n];
}
