// @kforge entry: cumsum_f32
// @kforge about: naive: one block per row, BLOCK elements at a time: a Hillis-Steele scan in shared memory plus the carry of the previous tiles
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(M) block=(BLOCK)
extern "C" __global__ void cumsum_f32(const float* x, float* y, int M, int N) {
  __shared__ float buf[2][BLOCK];
  const float* in = x + (long)blockIdx.x * N;
  float* out = y + (long)blockIdx.x * N;
  const int t = threadIdx.x;
  float carry = 0.0f;  // sum of all earlier tiles of the row
  for (int base = 0; base < N; base += BLOCK) {
    int src = 0;
    buf[0][t] = base + t < N ? in[base + t] : 0.0f;
    __syncthreads();
    for (int offset = 1; offset < BLOCK; offset *= 2) {  // ping-pong buffers: no read/write race
      buf[1 - src][t] = buf[src][t] + (t >= offset ? buf[src][t - offset] : 0.0f);
      src = 1 - src;
      __syncthreads();
    }
    if (base + t < N) out[base + t] = carry + buf[src][t];
    carry += buf[src][BLOCK - 1];
    __syncthreads();  // everyone has read the tile's total before the next tile overwrites it
  }
}
