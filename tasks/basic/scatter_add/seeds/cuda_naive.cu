// @kforge entry: scatter_add_f32
// @kforge about: naive: one thread per src element, atomicAdd into out (duplicate indices collide in the atomics)
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*D, BLOCK)) block=(BLOCK)
extern "C" __global__ void scatter_add_f32(const float* src, const int* idx, float* out, int M, int V, int D) {
  const long e = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (e >= (long)M * D) return;
  const long i = e / D;
  atomicAdd(out + (long)idx[i] * D + (e - i * D), src[e]);
}
