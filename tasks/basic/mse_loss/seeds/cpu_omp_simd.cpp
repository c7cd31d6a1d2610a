// @kforge entry: mse_loss_f32
// @kforge about: f32 SIMD partial sums over CHUNK elements, each chunk's total added in double; chunks across OpenMP threads above a size
// @kforge param: CHUNK=4096 in {1024,4096,16384}
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576}

// A chunk's f32 vector lanes sum only CHUNK / lanes squares each (~1e-7 relative), and the
// double sum over chunks keeps it there at any N.
static double chunk_sum(const float* __restrict pred, const float* __restrict target, long start, long end) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (long i = start; i < end; ++i) {
    const float d = pred[i] - target[i];
    sum += d * d;
  }
  return sum;
}

extern "C" void mse_loss_f32(const float* pred, const float* target, float* loss, int N) {
  double total = 0.0;
  if (N < PAR_THRESHOLD) {  // no parallel region at all: even `if (false)` costs microseconds
    for (long start = 0; start < N; start += CHUNK) total += chunk_sum(pred, target, start, start + CHUNK < N ? start + CHUNK : N);
  } else {
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (long start = 0; start < N; start += CHUNK) total += chunk_sum(pred, target, start, start + CHUNK < N ? start + CHUNK : N);
  }
  loss[0] = (float)(total / N);
}
