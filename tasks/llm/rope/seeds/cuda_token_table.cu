// @kforge entry: rope_f32
// @kforge about: one block per token: cos/sin computed once into shared memory and shared by all H+KVH heads
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: MAX_HALF=128 in {64,128,256}
// @kforge launch: grid=(M) block=(BLOCK)
// Head dims above 2*MAX_HALF fall back to computing each angle in place.
extern "C" __global__ void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  __shared__ float cos_table[MAX_HALF], sin_table[MAX_HALF];
  const int half = D / 2, m = blockIdx.x;
  const float p = (float)pos[m];
  const bool tabled = half <= MAX_HALF;
  if (tabled)
    for (int i = threadIdx.x; i < half; i += BLOCK) sincosf(p * powf(theta, -2.0f * (float)i / (float)D), &sin_table[i], &cos_table[i]);
  __syncthreads();
  for (int pair = threadIdx.x; pair < (H + KVH) * half; pair += BLOCK) {
    const int h = pair / half, i = pair % half;
    float* x = h < H ? q + ((long)m * H + h) * D : k + ((long)m * KVH + h - H) * D;
    float c, s;
    if (tabled) {
      c = cos_table[i];
      s = sin_table[i];
    } else {
      sincosf(p * powf(theta, -2.0f * (float)i / (float)D), &s, &c);
    }
    const float x0 = x[i], x1 = x[i + half];
    x[i] = x0 * c - x1 * s;
    x[i + half] = x0 * s + x1 * c;
  }
}
