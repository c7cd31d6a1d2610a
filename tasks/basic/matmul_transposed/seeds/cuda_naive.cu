// @kforge entry: matmul_transposed_f32
// @kforge about: naive: one thread per output element, TILE x TILE blocks; a warp reads one A element and a contiguous row of B per k
// @kforge param: TILE=16 in {8,16,32}
// @kforge launch: grid=(ceil_div(N, TILE), ceil_div(M, TILE)) block=(TILE, TILE)
extern "C" __global__ void matmul_transposed_f32(const float* A, const float* B, float* C, int M, int N, int K) {
  const int n = blockIdx.x * TILE + threadIdx.x, m = blockIdx.y * TILE + threadIdx.y;
  if (m >= M || n >= N) return;
  float sum = 0.0f;
  for (int k = 0; k < K; ++k) sum += A[(long)k * M + m] * B[(long)k * N + n];
  C[(long)m * N + n] = sum;
}
