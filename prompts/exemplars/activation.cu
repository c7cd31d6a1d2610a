// Exemplar for the activation category: task basic/gelu.
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) element by element (GELU, tanh form).
// Arguments: x f32[M,N] in, y f32[M,N] out, M, N.
// @kforge entry: gelu_f32
// @kforge about: float4 loads and stores, VEC4S float4s per thread; 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)) with __expf; scalar tail
// @kforge param: BLOCK=256 in {128,256,512,1024}
// @kforge param: VEC4S=2 in {1,2,4}
// @kforge launch: grid=(max(1, ceil_div(M*N, 4*VEC4S*BLOCK))) block=(BLOCK)

// One exponential and one fast division instead of tanhf. For very negative x, __expf overflows
// to +inf and __fdividef returns 0: GELU's true value there is below 1e-30 in magnitude.
__device__ __forceinline__ float gelu_one(float v) {
  const float u = 0.7978845608f * (v + 0.044715f * v * v * v);
  return __fdividef(v, 1.0f + __expf(-2.0f * u));
}

extern "C" __global__ void gelu_f32(const float* x, float* y, int M, int N) {
  const long total = (long)M * N, quads = total / 4;
  // Tensors are 64-byte aligned, so the flat array is float4-aligned whatever M and N are.
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  const long first = (long)blockIdx.x * VEC4S * BLOCK + threadIdx.x;
#pragma unroll
  for (int j = 0; j < VEC4S; ++j) {  // consecutive threads touch consecutive float4s: coalesced
    const long q = first + (long)j * BLOCK;
    if (q < quads) {
      const float4 v = x4[q];
      y4[q] = make_float4(gelu_one(v.x), gelu_one(v.y), gelu_one(v.z), gelu_one(v.w));
    }
  }
  // The last total % 4 elements, by the first block.
  if (blockIdx.x == 0 && threadIdx.x < total - quads * 4) {
    const long i = quads * 4 + threadIdx.x;
    y[i] = gelu_one(x[i]);
  }
}
