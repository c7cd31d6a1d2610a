// @kforge entry: embedding_f32
// @kforge about: float4 loads and stores when D is a multiple of 4 (rows are then 16-byte aligned), ROWS tokens per block
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: ROWS=1 in {1,2,4}
// @kforge launch: grid=(ceil_div(M, ROWS)) block=(BLOCK)
extern "C" __global__ void embedding_f32(const float* table, const int* ids, float* y, int M, int V, int D) {
  for (int r = 0; r < ROWS; ++r) {
    const int m = blockIdx.x * ROWS + r;
    if (m >= M) return;
    const float* row = table + (long)ids[m] * D;
    float* out = y + (long)m * D;
    if (D % 4 == 0) {
      const float4* row4 = reinterpret_cast<const float4*>(row);
      float4* out4 = reinterpret_cast<float4*>(out);
      for (int d = threadIdx.x; d < D / 4; d += BLOCK) out4[d] = __ldg(row4 + d);
    } else {
      for (int d = threadIdx.x; d < D; d += BLOCK) out[d] = __ldg(row + d);
    }
  }
}
