// @kforge entry: embedding_f32
// @kforge about: rows copied with memcpy; tokens across OpenMP threads only for large copies (one core nearly saturates a copy)
// @kforge param: PAR_THRESHOLD=1048576 in {65536,262144,1048576,4194304}
#include <cstring>

extern "C" void embedding_f32(const float* table, const int* ids, float* y, int M, int V, int D) {
  // A plain loop below the threshold: even `omp parallel if (false)` costs microseconds here.
  if ((long)M * D < PAR_THRESHOLD) {
    for (int m = 0; m < M; ++m) std::memcpy(y + (long)m * D, table + (long)ids[m] * D, sizeof(float) * D);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) std::memcpy(y + (long)m * D, table + (long)ids[m] * D, sizeof(float) * D);
}
