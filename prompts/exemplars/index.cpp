// Exemplar for the index category: task basic/scatter_add.
// for i in order: out[idx[i], :] += src[i, :]; indices repeat, every duplicate is added.
// Arguments: src f32[M,D] in, idx i32[M] in, out f32[V,D] inout, M, V, D.
// @kforge entry: scatter_add_f32
// @kforge about: each OpenMP thread owns the out rows v with v % threads == its id and adds their src rows in index order (no atomics, deterministic); SIMD along D
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
#include <omp.h>

extern "C" void scatter_add_f32(const float* src, const int* idx, float* out, int M, int V, int D) {
#pragma omp parallel if ((long)M * D >= PAR_THRESHOLD)
  {
    const int threads = omp_get_num_threads(), me = omp_get_thread_num();
    // Every thread reads all of idx (4 bytes a row) but only the src rows of its own out rows.
    for (int i = 0; i < M; ++i) {
      const int v = idx[i];
      if (v % threads != me) continue;
      const float* __restrict s = src + (long)i * D;
      float* __restrict o = out + (long)v * D;
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] += s[d];
    }
  }
}
