// @kforge entry: softmax_f32
// @kforge about: online softmax: one pass keeps a running (max, sum) per thread, merged by warp shuffles and one shared-memory step; a second pass writes; float4 when N % 4 == 0
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it).
#define NEG_INF __int_as_float(0xff800000)

// The running pair (m, s): s = sum of exp(x - m) over the elements seen, m their maximum.
struct Running {
  float m, s;
};

__device__ __forceinline__ Running merge(Running a, Running b) {
  const float m = fmaxf(a.m, b.m);
  if (m == NEG_INF) return {NEG_INF, 0.0f};  // neither saw an element: avoid exp(-inf + inf)
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

__device__ __forceinline__ Running add(Running r, float v) {
  if (v == NEG_INF) return r;  // a masked element adds nothing
  if (v <= r.m) return {r.m, r.s + __expf(v - r.m)};
  return {v, r.s * __expf(r.m - v) + 1.0f};
}

extern "C" __global__ void softmax_f32(const float* x, float* y, int M, int N) {
  __shared__ Running warp_runs[BLOCK / KFORGE_WARP_SIZE];
  const float* row = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  const bool vec = N % 4 == 0;  // rows then start 16-byte aligned

  Running r = {NEG_INF, 0.0f};
  if (vec) {
    for (int u = threadIdx.x; u < N / 4; u += BLOCK) {
      const float4 v = reinterpret_cast<const float4*>(row)[u];
      r = add(add(add(add(r, v.x), v.y), v.z), v.w);
    }
  } else {
    for (int n = threadIdx.x; n < N; n += BLOCK) r = add(r, row[n]);
  }
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) {
    const Running other = {__shfl_xor_sync(0xffffffffu, r.m, offset), __shfl_xor_sync(0xffffffffu, r.s, offset)};
    r = merge(r, other);
  }
  if (threadIdx.x % KFORGE_WARP_SIZE == 0) warp_runs[threadIdx.x / KFORGE_WARP_SIZE] = r;
  __syncthreads();
  Running total = warp_runs[0];
  for (int i = 1; i < BLOCK / KFORGE_WARP_SIZE; ++i) total = merge(total, warp_runs[i]);

  const float m = total.m, inverse = 1.0f / total.s;
  if (vec) {
    for (int u = threadIdx.x; u < N / 4; u += BLOCK) {
      const float4 v = reinterpret_cast<const float4*>(row)[u];
      reinterpret_cast<float4*>(out)[u] = make_float4(__expf(v.x - m) * inverse, __expf(v.y - m) * inverse,
                                                      __expf(v.z - m) * inverse, __expf(v.w - m) * inverse);
    }
  } else {
    for (int n = threadIdx.x; n < N; n += BLOCK) out[n] = __expf(row[n] - m) * inverse;
  }
}
