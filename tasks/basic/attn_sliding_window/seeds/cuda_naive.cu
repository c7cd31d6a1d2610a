// @kforge entry: attn_sliding_window_f32
// @kforge about: naive: one block per (query, batch-head) over its window: CHUNK scores at a time in shared memory (one thread per key), online softmax across chunks, one thread per output column
// @kforge param: BLOCK=128 in {64,128,256}
// @kforge param: CHUNK=64 in {32,64,128,256}
// @kforge launch: grid=(S, BH) block=(BLOCK)
// The task keeps D <= 256, so a thread's share of the output row fits in ceil(256 / BLOCK) registers.
extern "C" __global__ void attn_sliding_window_f32(const float* q, const float* k, const float* v, float* o, int BH,
                                                   int S, int D, int WIN) {
  constexpr int PER_THREAD = (256 + BLOCK - 1) / BLOCK;
  __shared__ float s[CHUNK];
  __shared__ float reduce[BLOCK];
  const int i = blockIdx.x, lo = max(i - WIN + 1, 0);
  const long base = (long)blockIdx.y * S * D;
  const float neg_inf = __int_as_float(0xff800000);  // without <cmath>
  const float scale = rsqrtf((float)D);
  const float* qi = q + base + (long)i * D;
  float acc[PER_THREAD] = {};
  float running_max = neg_inf, running_sum = 0.0f;
  for (int j0 = lo; j0 <= i; j0 += CHUNK) {
    const int n = min(CHUNK, i + 1 - j0);
    float local_max = neg_inf;
    for (int jj = threadIdx.x; jj < n; jj += BLOCK) {
      const float* kj = k + base + (long)(j0 + jj) * D;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
      s[jj] = dot * scale;
      local_max = fmaxf(local_max, s[jj]);
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
    for (int jj = threadIdx.x; jj < n; jj += BLOCK) {
      s[jj] = expf(s[jj] - new_max);
      local_sum += s[jj];
    }
    reduce[threadIdx.x] = local_sum;
    __syncthreads();
    for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) reduce[threadIdx.x] += reduce[threadIdx.x + stride];
      __syncthreads();
    }
    running_sum = running_sum * rescale + reduce[0];
    running_max = new_max;
    for (int e = 0; e < PER_THREAD; ++e) {
      const int d = threadIdx.x + e * BLOCK;
      if (d >= D) break;
      float a = acc[e] * rescale;
      for (int jj = 0; jj < n; ++jj) a += s[jj] * v[base + (long)(j0 + jj) * D + d];
      acc[e] = a;
    }
    __syncthreads();  // s and reduce are rewritten by the next chunk
  }
  for (int e = 0; e < PER_THREAD; ++e) {
    const int d = threadIdx.x + e * BLOCK;
    if (d < D) o[base + (long)i * D + d] = acc[e] / running_sum;
  }
}
