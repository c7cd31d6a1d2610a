// @kforge entry: attn_decode_f32
// @kforge about: naive: one block per query head over the whole cache: CHUNK scores at a time in shared memory (one thread per position), online softmax across chunks
// @kforge param: BLOCK=128 in {64,128,256}
// @kforge param: CHUNK=256 in {128,256,512}
// @kforge launch: grid=(H) block=(BLOCK)
// The task keeps D <= 256, so a thread's share of the output fits in ceil(256 / BLOCK) registers.
extern "C" __global__ void attn_decode_f32(const float* q, const float* k_cache, const float* v_cache, float* o, int H,
                                           int KVH, int L, int D, float scale) {
  constexpr int PER_THREAD = (256 + BLOCK - 1) / BLOCK;
  __shared__ float s[CHUNK];
  __shared__ float reduce[BLOCK];
  const int h = blockIdx.x, g = h / (H / KVH);
  const float neg_inf = __int_as_float(0xff800000);  // without <cmath>
  const float* qh = q + (long)h * D;
  float acc[PER_THREAD] = {};
  float running_max = neg_inf, running_sum = 0.0f;
  for (int t0 = 0; t0 < L; t0 += CHUNK) {
    const int n = min(CHUNK, L - t0);
    float local_max = neg_inf;
    for (int i = threadIdx.x; i < n; i += BLOCK) {
      const float* k = k_cache + ((long)(t0 + i) * KVH + g) * D;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qh[d] * k[d];
      s[i] = dot * scale;
      local_max = fmaxf(local_max, s[i]);
    }
    reduce[threadIdx.x] = local_max;
    __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) reduce[threadIdx.x] = fmaxf(reduce[threadIdx.x], reduce[threadIdx.x + stride]);
      __syncthreads();
    }
    const float new_max = fmaxf(running_max, reduce[0]);
    const float rescale = expf(running_max - new_max);  // 0 on the first chunk (exp(-inf))
    __syncthreads();
    float local_sum = 0.0f;
    for (int i = threadIdx.x; i < n; i += BLOCK) {
      s[i] = expf(s[i] - new_max);
      local_sum += s[i];
    }
    reduce[threadIdx.x] = local_sum;
    __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) reduce[threadIdx.x] += reduce[threadIdx.x + stride];
      __syncthreads();
    }
    running_sum = running_sum * rescale + reduce[0];
    running_max = new_max;
    for (int j = 0; j < PER_THREAD; ++j) {
      const int d = threadIdx.x + j * BLOCK;
      if (d >= D) break;
      float a = acc[j] * rescale;
      for (int i = 0; i < n; ++i) a += s[i] * v_cache[((long)(t0 + i) * KVH + g) * D + d];
      acc[j] = a;
    }
    __syncthreads();  // s and reduce are rewritten by the next chunk
  }
  for (int j = 0; j < PER_THREAD; ++j) {
    const int d = threadIdx.x + j * BLOCK;
    if (d < D) o[(long)h * D + d] = acc[j] / running_sum;
  }
}
