// @kforge entry: embedding_f32
// @kforge about: naive: one block per token, threads copy the row one float at a time
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void embedding_f32(const float* table, const int* ids, float* y, int M, int V, int D) {
  const float* row = table + (long)ids[blockIdx.x] * D;
  float* out = y + (long)blockIdx.x * D;
  for (int d = threadIdx.x; d < D; d += BLOCK) out[d] = row[d];
}
