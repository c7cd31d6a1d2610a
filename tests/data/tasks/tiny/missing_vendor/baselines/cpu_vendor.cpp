// @kforge entry: scale_openblas
// @kforge about: y = x, then y *= alpha, with OpenBLAS
#include <cblas.h>

extern "C" void scale_openblas(const float* x, float* y, int N, float alpha) {
  cblas_scopy(N, x, 1, y, 1);
  cblas_sscal(N, alpha, y, 1);
}
