// @kforge entry: gather_f32
// @kforge about: naive: one thread per output element; the index loads and the stores are coalesced, the x loads are not
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*J, BLOCK)) block=(BLOCK)
extern "C" __global__ void gather_f32(const float* x, const int* idx, float* y, int M, int N, int J) {
  const long e = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (e >= (long)M * J) return;
  y[e] = x[(e / J) * N + idx[e]];
}
