// Exemplar (broadcast): a kernel for task basic/add_bias, from its seed seeds/cuda_row_tiles.cu.
// Semantics: y[m,n] = x[m,n] + b[n] (bias broadcast over rows).
// Arguments: x f32[M,N] in, b f32[N] in, y f32[M,N] out, M, N
// @kforge entry: add_bias_f32
// @kforge about: a 2D grid (rows on x, which has no 65535 limit; column tiles on y): no division per element, b read coalesced once per tile, each thread PER_THREAD elements BLOCK apart
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: PER_THREAD=4 in {1,2,4,8}
// @kforge launch: grid=(M, ceil_div(N, BLOCK*PER_THREAD)) block=(BLOCK)
extern "C" __global__ void add_bias_f32(const float* x, const float* b, float* y, int M, int N) {
  const long row = (long)blockIdx.x * N;
  const int first = blockIdx.y * BLOCK * PER_THREAD + threadIdx.x;
#pragma unroll
  for (int e = 0; e < PER_THREAD; ++e) {
    const int n = first + e * BLOCK;  // consecutive threads, consecutive columns: coalesced
    if (n < N) y[row + n] = x[row + n] + b[n];
  }
}
