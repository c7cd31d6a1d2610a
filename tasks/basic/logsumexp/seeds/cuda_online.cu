// @kforge entry: logsumexp_f32
// @kforge about: one block per row, one read of the row: each thread keeps an online (max, sum of exp) pair, merged by warp shuffles and then across warps through shared memory
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).

// Merges the pair (m, s), s = sum exp(x - m), with (m2, s2): the larger max wins and the other
// sum is rescaled. -inf maxima (no elements yet) contribute nothing.
__device__ void merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == __int_as_float(0xff800000)) return;  // both empty
  s = s * __expf(m - mx) + s2 * __expf(m2 - mx);
  m = mx;
}

extern "C" __global__ void logsumexp_f32(const float* x, float* y, int M, int N) {
  __shared__ float warp_max[BLOCK / KFORGE_WARP_SIZE], warp_sum[BLOCK / KFORGE_WARP_SIZE];
  const float* row = x + (long)blockIdx.x * N;
  float m = __int_as_float(0xff800000), s = 0.0f;  // -inf without <cmath>
  for (int n = threadIdx.x; n < N; n += BLOCK) {
    const float v = row[n];
    if (v > m) {  // a new maximum: rescale what was summed so far
      s = s * __expf(m - v) + 1.0f;
      m = v;
    } else {
      s += __expf(v - m);
    }
  }
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2)
    merge(m, s, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, s, offset));
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  if (lane == 0) {
    warp_max[warp] = m;
    warp_sum[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < BLOCK / KFORGE_WARP_SIZE; ++w) merge(m, s, warp_max[w], warp_sum[w]);
    y[blockIdx.x] = m + logf(s);
  }
}
