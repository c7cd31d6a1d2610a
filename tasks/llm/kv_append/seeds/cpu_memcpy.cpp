// @kforge entry: kv_append_f32
// @kforge about: the token's row of each cache is contiguous (KVH*D floats): two memcpy calls
#include <cstring>

extern "C" void kv_append_f32(const float* k, const float* v, float* k_cache, float* v_cache, int L, int KVH, int D,
                              int pos) {
  const long row = (long)KVH * D;
  std::memcpy(k_cache + pos * row, k, sizeof(float) * row);
  std::memcpy(v_cache + pos * row, v, sizeof(float) * row);
}
