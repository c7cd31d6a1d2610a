// @kforge entry: qknorm_rope_f32
// @kforge about: naive: one block per head vector; shared-memory tree reduction for the norm; each pair's angle from powf, cosf, sinf
// @kforge param: BLOCK=128 in {64,128,256,512}
// @kforge launch: grid=(M*(H+KVH)) block=(BLOCK)
extern "C" __global__ void qknorm_rope_f32(float* q, float* k, const float* q_w, const float* k_w, const int* pos, int M,
                                           int H, int KVH, int D, float eps, float theta) {
  __shared__ float partial[BLOCK];
  const int m = blockIdx.x / (H + KVH), h = blockIdx.x % (H + KVH), half = D / 2;
  float* x = h < H ? q + ((long)m * H + h) * D : k + ((long)m * KVH + h - H) * D;
  const float* gain = h < H ? q_w : k_w;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < D; i += BLOCK) sum += x[i] * x[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float scale = rsqrtf(partial[0] / D + eps);
  // Each thread reads and writes only its own pairs (i, i + half): no barrier needed.
  for (int i = threadIdx.x; i < half; i += BLOCK) {
    const float angle = (float)pos[m] * powf(theta, -2.0f * (float)i / (float)D);
    const float c = cosf(angle), s = sinf(angle);
    const float x0 = x[i] * scale * gain[i], x1 = x[i + half] * scale * gain[i + half];
    x[i] = x0 * c - x1 * s;
    x[i + half] = x0 * s + x1 * c;
  }
}
