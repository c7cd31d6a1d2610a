// Exemplar (optimizer): a kernel for task basic/adam_update, from its seed seeds/cpu_omp_simd.cpp.
// Semantics: one torch.optim.Adam step in place: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, param -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps).
// Arguments: param f32[N] inout, grad f32[N] in, m f32[N] inout, v f32[N] inout, N, lr, beta1, beta2, eps (f32 scalars), step (i32 scalar)
// @kforge entry: adam_update_f32
// @kforge about: bias corrections folded into two constants once per call; a SIMD loop (sqrt and divide vectorise) split across OpenMP threads in CHUNK-element pieces above PAR_THRESHOLD
// @kforge param: PAR_THRESHOLD=262144 in {65536,262144,1048576,4194304}
// @kforge param: CHUNK=65536 in {4096,16384,65536,262144}
#include <cmath>

extern "C" void adam_update_f32(float* __restrict param, const float* __restrict grad, float* __restrict m,
                                float* __restrict v, int N, float lr, float beta1, float beta2, float eps, int step) {
  // In double once, so that the per-element work is what the reference rounds.
  const float step_size = (float)(lr / (1 - std::pow((double)beta1, step)));
  const float inv_sqrt_c2 = (float)(1 / std::sqrt(1 - std::pow((double)beta2, step)));
  const float one_minus_b1 = 1 - beta1, one_minus_b2 = 1 - beta2;
  const long chunks = ((long)N + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (N >= PAR_THRESHOLD)
  for (long c = 0; c < chunks; ++c) {
    const long end = (c + 1) * CHUNK < N ? (c + 1) * CHUNK : N;
#pragma omp simd
    for (long i = c * CHUNK; i < end; ++i) {
      const float g = grad[i];
      const float mi = beta1 * m[i] + one_minus_b1 * g;
      const float vi = beta2 * v[i] + one_minus_b2 * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_c2 + eps);
    }
  }
}
