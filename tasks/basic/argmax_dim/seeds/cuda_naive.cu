// @kforge entry: argmax_dim_f32
// @kforge about: naive: one block per row, strided per-thread argmax, shared-memory tree with the lowest index on ties
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void argmax_dim_f32(const float* x, int* idx, int M, int N) {
  __shared__ float best[BLOCK];
  __shared__ int best_index[BLOCK];
  const float* row = x + (long)blockIdx.x * N;
  float mine = 0.0f;
  int mine_index = -1;  // -1: this thread saw no element (N < BLOCK)
  for (int n = threadIdx.x; n < N; n += BLOCK)
    if (mine_index < 0 || row[n] > mine) {  // n only grows: the first maximum is kept
      mine = row[n];
      mine_index = n;
    }
  best[threadIdx.x] = mine;
  best_index[threadIdx.x] = mine_index;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float b = best[threadIdx.x + stride];
      const int bi = best_index[threadIdx.x + stride], ai = best_index[threadIdx.x];
      if (bi >= 0 && (ai < 0 || b > best[threadIdx.x] || (b == best[threadIdx.x] && bi < ai))) {
        best[threadIdx.x] = b;
        best_index[threadIdx.x] = bi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) idx[blockIdx.x] = best_index[0];
}
