// @kforge entry: dequantize_q8_0_f32
// @kforge about: naive: one thread per output element (coalesced writes), its block's scale read and converted by every thread
// @kforge param: BLOCK=256 in {64,128,256,512,1024}
// @kforge launch: grid=(ceil_div(M*K, BLOCK)) block=(BLOCK)

// ggml's block_q8_0, 34 bytes: 2-byte alignment, so scales are read as unsigned short.
struct block_q8_0 {
  unsigned short d;
  signed char qs[32];
};

// IEEE binary16 bits to float without <cuda_fp16.h> (which hiprtc lacks): the half's fields
// shifted into a float's and rebiased by 2^112, which also normalizes subnormals.
__device__ float half_to_float(unsigned short h) {
  float magnitude = __int_as_float((h & 0x7FFF) << 13) * 0x1p112f;
  if ((h & 0x7C00) == 0x7C00) magnitude = __int_as_float(0x7F800000 | ((h & 0x3FF) << 13));
  return (h & 0x8000) ? -magnitude : magnitude;
}

extern "C" __global__ void dequantize_q8_0_f32(const void* W, float* y, int M, int K) {
  const long i = (long)blockIdx.x * BLOCK + threadIdx.x;
  if (i >= (long)M * K) return;
  const block_q8_0& block = static_cast<const block_q8_0*>(W)[i / 32];
  y[i] = (float)block.qs[i % 32] * half_to_float(block.d);
}
