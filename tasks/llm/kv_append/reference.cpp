// @kforge entry: kv_append_reference
// @kforge about: the oracle: one element at a time
extern "C" void kv_append_reference(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH,
                                    int D, int pos) {
  for (long g = 0; g < KVH; ++g)
    for (long d = 0; d < D; ++d) {
      k_cache[(long(pos) * KVH + g) * D + d] = k[g * D + d];
      v_cache[(long(pos) * KVH + g) * D + d] = v[g * D + d];
    }
}
