// @kforge entry: gemm_q8_0_q8
// @kforge about: naive: one block per output element C[m, n], each thread takes Q8_0 blocks b = tid, tid + BLOCK, ...: quantizes that block of A's row m itself (for every n again), integer dot with W's row n, scaled by d_w * d_a; shared-memory tree reduction
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N, M) block=(BLOCK)

// IEEE binary16 bits to float without <cuda_fp16.h> (which hiprtc lacks): the half's fields
// shifted into a float's and rebiased by 2^112, which also normalizes subnormals.
__device__ float half_to_float(unsigned short h) {
  float magnitude = __int_as_float((h & 0x7FFF) << 13) * 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = __int_as_float(0x7F800000 | ((h & 0x3FF) << 13));
  return (h & 0x8000) ? -magnitude : magnitude;
}

// f32 to f16 bits, to nearest with ties to even (ggml's GGML_FP32_TO_FP16).
__device__ unsigned short float_to_half(float f) {
  const unsigned u = __float_as_uint(f);
  const unsigned short sign = (u >> 16) & 0x8000;
  unsigned a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return sign | 0x7E00;
  if (a >= 0x477FF000) return sign | 0x7C00;
  if (a < 0x38800000) return sign | (unsigned short)rintf(fabsf(f) * 0x1p24f);
  a += 0xFFF + ((a >> 13) & 1);
  return sign | (unsigned short)((a - 0x38000000) >> 13);
}

// ggml's block_q8_0: an f16 scale, then 32 int8; 34 bytes, 2-byte aligned.
struct block_q8_0 {
  unsigned short d;
  signed char qs[32];
};

extern "C" __global__ void gemm_q8_0_q8(const float* A, const void* W, float* C, int M, int N, int K) {
  __shared__ float partial[BLOCK];
  const int blocks = K / 32, n = blockIdx.x, m = blockIdx.y;
  const block_q8_0* row = static_cast<const block_q8_0*>(W) + (long)n * blocks;
  float sum = 0.0f;
  for (int b = threadIdx.x; b < blocks; b += BLOCK) {
    // quantize_row_q8_0_ref on block b of A's row m: IEEE f32 division and roundf (half away from zero)
    const float* ab = A + (long)m * K + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(ab[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int dot = 0;
    for (int j = 0; j < 32; ++j) dot += row[b].qs[j] * (int)roundf(ab[j] * id);
    sum += half_to_float(row[b].d) * half_to_float(float_to_half(d)) * (float)dot;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) C[(long)m * N + n] = partial[0];
}
