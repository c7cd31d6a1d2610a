// @kforge entry: argmax_f32
// @kforge about: naive: a single block; each thread keeps its first best over a strided slice, then a shared-memory argmax tree
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(1) block=(BLOCK)
extern "C" __global__ void argmax_f32(const float* logits, int* token, int V) {
  __shared__ float best[BLOCK];
  __shared__ int best_index[BLOCK];
  float mine = 0.0f;
  int mine_index = -1;
  for (int n = threadIdx.x; n < V; n += BLOCK)
    if (mine_index < 0 || logits[n] > mine) {  // n only grows: the first best is kept
      mine = logits[n];
      mine_index = n;
    }
  best[threadIdx.x] = mine;
  best_index[threadIdx.x] = mine_index;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float b = best[threadIdx.x + stride];
      const int bi = best_index[threadIdx.x + stride];
      const int ai = best_index[threadIdx.x];
      if (bi >= 0 && (ai < 0 || b > best[threadIdx.x] || (b == best[threadIdx.x] && bi < ai))) {
        best[threadIdx.x] = b;
        best_index[threadIdx.x] = bi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) token[0] = best_index[0];
}
