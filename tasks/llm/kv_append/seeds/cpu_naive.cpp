// @kforge entry: kv_append_f32
// @kforge about: naive: head by head, element by element, k and v interleaved
extern "C" void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH, int D,
                              int pos) {
  for (int g = 0; g < KVH; ++g)
    for (int d = 0; d < D; ++d) {
      k_cache[((long)pos * KVH + g) * D + d] = k[(long)g * D + d];
      v_cache[((long)pos * KVH + g) * D + d] = v[(long)g * D + d];
    }
}
