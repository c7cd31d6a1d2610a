// @kforge entry: sgd_momentum_f32
// @kforge about: naive: one thread per parameter
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N, BLOCK)) block=(BLOCK)
extern "C" __global__ void sgd_momentum_f32(float* param, const float* grad, float* buf, int N, float lr,
                                            float momentum, float weight_decay) {
  const int i = blockIdx.x * BLOCK + threadIdx.x;
  if (i >= N) return;
  const float p = param[i];
  const float b = momentum * buf[i] + (grad[i] + weight_decay * p);
  buf[i] = b;
  param[i] = p - lr * b;
}
