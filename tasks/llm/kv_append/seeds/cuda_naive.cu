// @kforge entry: kv_append_f32
// @kforge about: naive: one thread per element of k and of v
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(KVH*D, BLOCK)) block=(BLOCK)
extern "C" __global__ void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH,
                                         int D, int pos) {
  const int i = blockIdx.x * BLOCK + threadIdx.x;
  if (i >= KVH * D) return;
  k_cache[(long)pos * KVH * D + i] = k[i];
  v_cache[(long)pos * KVH * D + i] = v[i];
}
