// Exemplar for the pooling category: task basic/maxpool2d.
// NCHW max pooling, 3x3 window, stride 2, padding 1 (padding never wins); OH = (H-1)/2+1, OW = (W-1)/2+1.
// Arguments: x f32[N,C,H,W] in, y f32[N,C,OH,OW] out, N, C, H, W.
// @kforge entry: maxpool2d_f32
// @kforge about: a 2-D block of TX x TY outputs of one plane (grid z = plane): no divisions per thread, rows clamped once, read-only loads
// @kforge param: TX=32 in {16,32,64}
// @kforge param: TY=8 in {4,8,16}
// @kforge launch: grid=(ceil_div((W - 1) / 2 + 1, TX), ceil_div((H - 1) / 2 + 1, TY), N*C) block=(TX, TY)
// Grid z holds the N*C planes (at most 65535 on NVIDIA; fold planes into x for more).
extern "C" __global__ void maxpool2d_f32(const float* __restrict__ x, float* __restrict__ y, int N, int C, int H, int W) {
  const int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
  const int j = blockIdx.x * TX + threadIdx.x, i = blockIdx.y * TY + threadIdx.y;
  if (i >= OH || j >= OW) return;
  const float* plane = x + (long)blockIdx.z * H * W;
  // The window's rows and columns, clamped into the image: a clamped tap repeats a tap that is
  // inside the window, which cannot change a maximum (the same trick as skipping the padding).
  const int h0 = max(2 * i - 1, 0), h2 = min(2 * i + 1, H - 1);
  const int w0 = max(2 * j - 1, 0), w2 = min(2 * j + 1, W - 1);
  const int rows[3] = {h0, 2 * i, h2}, cols[3] = {w0, 2 * j, w2};
  float best = __ldg(plane + (long)rows[0] * W + cols[0]);
#pragma unroll
  for (int a = 0; a < 3; ++a)
#pragma unroll
    for (int b = 0; b < 3; ++b) best = fmaxf(best, __ldg(plane + (long)rows[a] * W + cols[b]));
  y[((long)blockIdx.z * OH + i) * OW + j] = best;
}
