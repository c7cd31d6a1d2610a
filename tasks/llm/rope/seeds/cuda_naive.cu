// @kforge entry: rope_f32
// @kforge about: naive: one thread per rotated pair, each computing its own angle with powf, cosf and sinf
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*(H+KVH)*(D/2), BLOCK)) block=(BLOCK)
extern "C" __global__ void rope_f32(float* q, float* k, const int* pos, int M, int H, int KVH, int D, float theta) {
  const int half = D / 2;
  const long pair = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (pair >= (long)M * (H + KVH) * half) return;
  const int i = pair % half;
  const long head = pair / half;  // over tokens, then q heads followed by k heads
  const int m = head / (H + KVH), h = head % (H + KVH);
  float* x = h < H ? q + ((long)m * H + h) * D : k + ((long)m * KVH + h - H) * D;
  const float angle = (float)pos[m] * powf(theta, -2.0f * (float)i / (float)D);
  const float c = cosf(angle), s = sinf(angle);
  const float x0 = x[i], x1 = x[i + half];
  x[i] = x0 * c - x1 * s;
  x[i + half] = x0 * s + x1 * c;
}
