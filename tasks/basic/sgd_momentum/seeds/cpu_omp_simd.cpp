// @kforge entry: sgd_momentum_f32
// @kforge about: restrict-qualified SIMD loop split across OpenMP threads in CHUNK-element pieces above PAR_THRESHOLD
// @kforge param: PAR_THRESHOLD=524288 in {65536,262144,524288,1048576,4194304}
// @kforge param: CHUNK=65536 in {4096,16384,65536,262144}

extern "C" void sgd_momentum_f32(float* __restrict param, const float* __restrict grad, float* __restrict buf, int N,
                                 float lr, float momentum, float weight_decay) {
  const long chunks = ((long)N + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (N >= PAR_THRESHOLD)
  for (long c = 0; c < chunks; ++c) {
    const long end = (c + 1) * CHUNK < N ? (c + 1) * CHUNK : N;
#pragma omp simd
    for (long i = c * CHUNK; i < end; ++i) {
      const float p = param[i];
      const float b = momentum * buf[i] + (grad[i] + weight_decay * p);
      buf[i] = b;
      param[i] = p - lr * b;
    }
  }
}
