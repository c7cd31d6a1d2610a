// Exemplar for the reduction category: task basic/sum_dim.
// y[m] = sum_n x[m,n] (sum over the last dimension).
// Arguments: x f32[M,N] in, y f32[M] out, M, N.
// @kforge entry: sum_dim_f32
// @kforge about: one block per row, float4 loads when rows are 16-byte aligned (N % 4 == 0), four independent partial sums per thread, warp shuffles then shared memory
// @kforge param: BLOCK=256 in {128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it): never write 32.
constexpr int WARPS = BLOCK / KFORGE_WARP_SIZE;

extern "C" __global__ void sum_dim_f32(const float* x, float* y, int M, int N) {
  __shared__ float warp_sums[WARPS];
  const float* row = x + (long)blockIdx.x * N;
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;  // independent chains keep several loads in flight
  int tail_start = 0;
  if (N % 4 == 0) {  // every row starts on a 16-byte boundary (the tensor is 64-byte aligned)
    const float4* row4 = reinterpret_cast<const float4*>(row);
    for (int q = threadIdx.x; q < N / 4; q += BLOCK) {
      const float4 v = row4[q];
      s0 += v.x;
      s1 += v.y;
      s2 += v.z;
      s3 += v.w;
    }
    tail_start = N;
  }
  for (int n = tail_start + threadIdx.x; n < N; n += BLOCK) s0 += row[n];
  float sum = (s0 + s1) + (s2 + s3);
  for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (threadIdx.x % KFORGE_WARP_SIZE == 0) warp_sums[threadIdx.x / KFORGE_WARP_SIZE] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < WARPS; ++i) total += warp_sums[i];
    y[blockIdx.x] = total;
  }
}
