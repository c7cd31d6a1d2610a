// @kforge entry: avgpool1d_f32
// @kforge about: naive: one thread per output element, its window summed in registers
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*((L - K) / S + 1), BLOCK)) block=(BLOCK)
extern "C" __global__ void avgpool1d_f32(const float* x, float* y, int N, int C, int L, int K, int S) {
  const int OL = (L - K) / S + 1;
  const long o = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (o >= (long)N * C * OL) return;
  const float* window = x + (o / OL) * L + (o % OL) * S;
  float sum = 0.0f;
  for (int k = 0; k < K; ++k) sum += window[k];
  y[o] = sum / K;
}
