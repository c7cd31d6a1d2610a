// @kforge entry: adam_update_f32
// @kforge about: naive: one thread per parameter, bias corrections computed by every thread
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N, BLOCK)) block=(BLOCK)
extern "C" __global__ void adam_update_f32(float* param, const float* grad, float* m, float* v, int N, float lr,
                                           float beta1, float beta2, float eps, int step) {
  const int i = blockIdx.x * BLOCK + threadIdx.x;
  if (i >= N) return;
  const float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
  const float g = grad[i];
  const float mi = beta1 * m[i] + (1.0f - beta1) * g;
  const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] -= lr / c1 * mi / (sqrtf(vi) / sqrtf(c2) + eps);
}
