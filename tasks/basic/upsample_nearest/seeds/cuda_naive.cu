// @kforge entry: upsample_nearest_f32
// @kforge about: naive: one thread per output element (coalesced writes), the source from integer divisions
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(N*C*H*S*W*S, BLOCK)) block=(BLOCK)
extern "C" __global__ void upsample_nearest_f32(const float* x, float* y, int N, int C, int H, int W, int S) {
  const long OW = (long)W * S, OH = (long)H * S;
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)N * C * OH * OW) return;
  const long j = i % OW, row = i / OW;  // row = p * OH + oh
  const long oh = row % OH, p = row / OH;
  y[i] = x[(p * H + oh / S) * W + j / S];
}
