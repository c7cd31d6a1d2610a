// @kforge entry: k
// @kforge about: every header key, a two-launch kernel with a workspace
// @kforge param: BLOCK=256 in {64,128,256}
// @kforge param: UNROLL=-1
// @kforge launch: grid=(ceil_div(N,BLOCK), max(1, M / 2), 1) block=(BLOCK) smem=BLOCK*4
// @kforge launch: grid=(1) block=(32,2,(BLOCK/64)) smem=0
// @kforge workspace: N * 4 + (M << 2)
extern "C" __global__ void k(const float* x, float* y, int N, int M, void* workspace) {}
