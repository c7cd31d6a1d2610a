// @kforge entry: matmul_batched_f32
// @kforge about: naive: one thread per output element, TILE x TILE blocks, batch entries along grid z
// @kforge param: TILE=16 in {8,16,32}
// @kforge launch: grid=(ceil_div(N, TILE), ceil_div(M, TILE), BATCH) block=(TILE, TILE)
extern "C" __global__ void matmul_batched_f32(const float* A, const float* B, float* C, int BATCH, int M, int N, int K) {
  const int n = blockIdx.x * TILE + threadIdx.x, m = blockIdx.y * TILE + threadIdx.y;
  if (m >= M || n >= N) return;
  const float* a = A + ((long)blockIdx.z * M + m) * K;
  const float* b = B + (long)blockIdx.z * K * N + n;  // neighbouring threads read neighbouring columns
  float sum = 0.0f;
  for (int k = 0; k < K; ++k) sum += a[k] * b[(long)k * N];
  C[((long)blockIdx.z * M + m) * N + n] = sum;
}
