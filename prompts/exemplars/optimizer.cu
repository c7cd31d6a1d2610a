// Exemplar (optimizer): a kernel for task basic/adam_update, from its seed seeds/cuda_vec4.cu.
// Semantics: one torch.optim.Adam step in place: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, param -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps).
// Arguments: param f32[N] inout, grad f32[N] in, m f32[N] inout, v f32[N] inout, N, lr, beta1, beta2, eps (f32 scalars), step (i32 scalar)
// @kforge entry: adam_update_f32
// @kforge about: float4 loads and stores (tensors are 64-byte aligned) with a scalar tail, bias corrections folded into two constants, a grid-stride loop over a fixed grid
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge param: GRID=1024 in {256,512,1024,2048,4096}
// @kforge launch: grid=(min(GRID, ceil_div(N, 4*BLOCK))) block=(BLOCK)

struct AdamConstants {
  float beta1, beta2, one_minus_b1, one_minus_b2, step_size, inv_sqrt_c2, eps;
};

__device__ float adam_one(float& p, float g, float& m, float& v, const AdamConstants& c) {
  m = c.beta1 * m + c.one_minus_b1 * g;
  v = c.beta2 * v + c.one_minus_b2 * g * g;
  p -= c.step_size * m / (sqrtf(v) * c.inv_sqrt_c2 + c.eps);
  return p;
}

extern "C" __global__ void adam_update_f32(float* param, const float* grad, float* m, float* v, int N, float lr,
                                           float beta1, float beta2, float eps, int step) {
  AdamConstants c;
  c.beta1 = beta1;
  c.beta2 = beta2;
  c.one_minus_b1 = 1.0f - beta1;
  c.one_minus_b2 = 1.0f - beta2;
  c.step_size = lr / (1.0f - powf(beta1, (float)step));
  c.inv_sqrt_c2 = rsqrtf(1.0f - powf(beta2, (float)step));
  c.eps = eps;
  const int quads = N / 4;
  const int stride = gridDim.x * BLOCK;
  for (int i = blockIdx.x * BLOCK + threadIdx.x; i < quads; i += stride) {
    float4 p = reinterpret_cast<float4*>(param)[i], mi = reinterpret_cast<float4*>(m)[i];
    float4 vi = reinterpret_cast<float4*>(v)[i];
    const float4 g = reinterpret_cast<const float4*>(grad)[i];
    adam_one(p.x, g.x, mi.x, vi.x, c);
    adam_one(p.y, g.y, mi.y, vi.y, c);
    adam_one(p.z, g.z, mi.z, vi.z, c);
    adam_one(p.w, g.w, mi.w, vi.w, c);
    reinterpret_cast<float4*>(param)[i] = p;
    reinterpret_cast<float4*>(m)[i] = mi;
    reinterpret_cast<float4*>(v)[i] = vi;
  }
  // The last N % 4 parameters, one thread each.
  const int tail = quads * 4 + blockIdx.x * BLOCK + threadIdx.x;
  if (tail < N) adam_one(param[tail], grad[tail], m[tail], v[tail], c);
}
