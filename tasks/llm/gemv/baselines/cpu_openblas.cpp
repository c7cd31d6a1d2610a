// @kforge entry: gemv_openblas
// @kforge about: the vendor baseline: OpenBLAS cblas_sgemv (its OpenMP build, sharing the candidates' thread pool)
#include <cblas.h>

extern "C" void gemv_openblas(const float* W, const float* x, float* y, int N, int K) {
  cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W, K, x, 1, 0.0f, y, 1);
}
