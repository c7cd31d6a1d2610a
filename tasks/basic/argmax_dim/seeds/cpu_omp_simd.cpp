// @kforge entry: argmax_dim_f32
// @kforge about: two passes per row: a SIMD max reduction, then a CHUNK-wide SIMD scan for the first element equal to it; rows across OpenMP threads
// @kforge param: CHUNK=64 in {16,32,64,128}
// @kforge param: PAR_THRESHOLD=65536 in {16384,65536,262144,1048576}
extern "C" void argmax_dim_f32(const float* x, int* idx, int M, int N) {
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_THRESHOLD)
  for (int m = 0; m < M; ++m) {
    const float* __restrict row = x + (long)m * N;
    float best = row[0];
#pragma omp simd reduction(max : best)
    for (int n = 0; n < N; ++n) best = row[n] > best ? row[n] : best;
    // The first index holding the maximum: a vector "any equal?" test per chunk, then a scalar
    // scan inside the one chunk that has it. The row is still in cache from pass one.
    int found = N;
    for (int n0 = 0; n0 < N && found == N; n0 += CHUNK) {
      const int end = n0 + CHUNK < N ? n0 + CHUNK : N;
      int hit = 0;
#pragma omp simd reduction(| : hit)
      for (int n = n0; n < end; ++n) hit |= row[n] == best;
      if (hit)
        for (int n = n0; n < end; ++n)
          if (row[n] == best) {
            found = n;
            break;
          }
    }
    idx[m] = found;
  }
}
