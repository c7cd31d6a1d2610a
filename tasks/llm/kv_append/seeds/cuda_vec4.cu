// @kforge entry: kv_append_f32
// @kforge about: float4 copies when KVH*D is a multiple of 4 (the rows are then 16-byte aligned); k by blockIdx.y 0, v by 1
// @kforge param: BLOCK=256 in {64,128,256,512}
// @kforge launch: grid=(max(1, ceil_div(KVH*D, 4*BLOCK)), 2) block=(BLOCK)
extern "C" __global__ void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH,
                                         int D, int pos) {
  const int row = KVH * D;
  const float* from = blockIdx.y == 0 ? k : v;
  float* to = (blockIdx.y == 0 ? k_cache : v_cache) + (long)pos * row;
  const int i = blockIdx.x * BLOCK + threadIdx.x;
  if (row % 4 == 0) {
    if (i < row / 4) reinterpret_cast<float4*>(to)[i] = reinterpret_cast<const float4*>(from)[i];
  } else {
    for (int j = i; j < row; j += gridDim.x * BLOCK) to[j] = from[j];
  }
}
