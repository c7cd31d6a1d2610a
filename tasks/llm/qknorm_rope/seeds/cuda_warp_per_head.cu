// @kforge entry: qknorm_rope_f32
// @kforge about: one block per token: cos/sin once into shared memory; one warp per head, norm by warp shuffles, no block barrier per head
// @kforge param: BLOCK=256 in {128,256,512,1024}
// @kforge param: MAX_HALF=128 in {64,128,256}
// @kforge launch: grid=(M) block=(BLOCK)
// BLOCK / KFORGE_WARP_SIZE warps (the backend defines the warp size). Head dims above
// 2*MAX_HALF compute each angle in place instead of from the table.
extern "C" __global__ void qknorm_rope_f32(float* q, float* k, const float* q_w, const float* k_w, const int* pos, int M,
                                           int H, int KVH, int D, float eps, float theta) {
  __shared__ float cos_table[MAX_HALF], sin_table[MAX_HALF];
  const int half = D / 2, m = blockIdx.x;
  const float p = (float)pos[m];
  const bool tabled = half <= MAX_HALF;
  if (tabled)
    for (int i = threadIdx.x; i < half; i += BLOCK)
      sincosf(p * powf(theta, -2.0f * (float)i / (float)D), &sin_table[i], &cos_table[i]);
  __syncthreads();
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  for (int h = warp; h < H + KVH; h += BLOCK / KFORGE_WARP_SIZE) {
    float* x = h < H ? q + ((long)m * H + h) * D : k + ((long)m * KVH + h - H) * D;
    const float* gain = h < H ? q_w : k_w;
    float sum = 0.0f;
    for (int i = lane; i < D; i += KFORGE_WARP_SIZE) sum += x[i] * x[i];
    for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    const float scale = rsqrtf(sum / D + eps);
    for (int i = lane; i < half; i += KFORGE_WARP_SIZE) {
      float c, s;
      if (tabled) {
        c = cos_table[i];
        s = sin_table[i];
      } else {
        sincosf(p * powf(theta, -2.0f * (float)i / (float)D), &s, &c);
      }
      const float x0 = x[i] * scale * gain[i], x1 = x[i + half] * scale * gain[i + half];
      x[i] = x0 * c - x1 * s;
      x[i + half] = x0 * s + x1 * c;
    }
  }
}
