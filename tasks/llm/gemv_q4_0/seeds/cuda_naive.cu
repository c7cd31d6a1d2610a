// @kforge entry: gemv_q4_0
// @kforge about: naive: one block per output row, each thread unpacks elements k = tid, tid + BLOCK, ... from their Q4_0 blocks; shared-memory tree reduction
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N) block=(BLOCK)

// IEEE binary16 bits to float without <cuda_fp16.h> (which hiprtc lacks): the half's fields
// shifted into a float's and rebiased by 2^112, which also normalizes subnormals.
__device__ float half_to_float(unsigned short h) {
  float magnitude = __int_as_float((h & 0x7FFF) << 13) * 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = __int_as_float(0x7F800000 | ((h & 0x3FF) << 13));
  return (h & 0x8000) ? -magnitude : magnitude;
}

// ggml's block_q4_0: an f16 scale, then 16 bytes; element j is the low nibble of qs[j], element
// j + 16 its high nibble; 18 bytes, 2-byte aligned.
struct block_q4_0 {
  unsigned short d;
  unsigned char qs[16];
};

extern "C" __global__ void gemv_q4_0(const void* W, const float* x, float* y, int N, int K) {
  __shared__ float partial[BLOCK];
  const block_q4_0* row = static_cast<const block_q4_0*>(W) + (long)blockIdx.x * (K / 32);
  float sum = 0.0f;
  for (int k = threadIdx.x; k < K; k += BLOCK) {
    const block_q4_0& block = row[k / 32];
    const int j = k % 32;
    const int nibble = j < 16 ? block.qs[j] & 0x0F : block.qs[j - 16] >> 4;
    sum += (nibble - 8) * half_to_float(block.d) * x[k];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) y[blockIdx.x] = partial[0];
}
