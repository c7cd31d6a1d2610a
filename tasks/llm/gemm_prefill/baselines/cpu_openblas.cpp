// @kforge entry: gemm_prefill_openblas
// @kforge about: the vendor baseline: OpenBLAS cblas_sgemm with W transposed (its OpenMP build)
#include <cblas.h>

extern "C" void gemm_prefill_openblas(const float* A, const float* W, float* C, int M, int N, int K) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
}
