// @kforge entry: swiglu_f32
// @kforge about: float4 loads and stores, VEC4S float4s per thread, __expf and a fast reciprocal; scalar tail
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: VEC4S=2 in {1,2,4}
// @kforge launch: grid=(max(1, ceil_div(M*N, 4*VEC4S*BLOCK))) block=(BLOCK)
__device__ __forceinline__ float swiglu_one(float g, float u) { return g * __frcp_rn(1.0f + __expf(-g)) * u; }

extern "C" __global__ void swiglu_f32(const float* gate, const float* up, float* y, int M, int N) {
  const long total = (long)M * N, quads = total / 4;
  const float4* gate4 = reinterpret_cast<const float4*>(gate);
  const float4* up4 = reinterpret_cast<const float4*>(up);
  float4* y4 = reinterpret_cast<float4*>(y);
  const long first = (long)blockIdx.x * VEC4S * BLOCK + threadIdx.x;
#pragma unroll
  for (int j = 0; j < VEC4S; ++j) {
    const long q = first + (long)j * BLOCK;
    if (q < quads) {
      const float4 g = gate4[q], u = up4[q];
      y4[q] = make_float4(swiglu_one(g.x, u.x), swiglu_one(g.y, u.y), swiglu_one(g.z, u.z), swiglu_one(g.w, u.w));
    }
  }
  // The last total % 4 elements, by the first block.
  if (blockIdx.x == 0 && threadIdx.x < total - quads * 4) {
    const long i = quads * 4 + threadIdx.x;
    y[i] = swiglu_one(gate[i], up[i]);
  }
}
