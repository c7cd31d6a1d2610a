// Exemplar (resize): a kernel for task basic/resize_bilinear, from its seed seeds/cuda_row_blocks.cu.
// Semantics: y[n,c,i,j] = bilinear sample of x[n,c] at PyTorch's align_corners=False source point ((i+0.5)*H/OH-0.5, (j+0.5)*W/OW-0.5), clamped at 0 and at the edge.
// Arguments: x f32[N,C,H,W] in, y f32[N,C,OH,OW] out, N, C, H, W, OH, OW
// @kforge entry: resize_bilinear_f32
// @kforge about: one block row per output row (grid x = N*C*OH rows, y = column tiles): the row's source rows and weight computed once per thread without divisions by the flat index; coalesced writes
// @kforge param: BLOCK=128 in {32,64,128,256,512}
// @kforge launch: grid=(N*C*OH, ceil_div(OW, BLOCK)) block=(BLOCK)
extern "C" __global__ void resize_bilinear_f32(const float* x, float* y, int N, int C, int H, int W, int OH,
                                               int OW) {
  const int j = blockIdx.y * BLOCK + threadIdx.x;
  if (j >= OW) return;
  const long r = blockIdx.x;  // p * OH + oh
  const int oh = (int)(r % OH);
  const float* plane = x + (r / OH) * H * W;
  // PyTorch's align_corners=False source coordinates, clamped at 0 and at the last pixel.
  const float sh = fmaxf((oh + 0.5f) * ((float)H / OH) - 0.5f, 0.0f);
  const float sw = fmaxf((j + 0.5f) * ((float)W / OW) - 0.5f, 0.0f);
  const int h0 = min((int)sh, H - 1), w0 = min((int)sw, W - 1);
  const int h1 = min(h0 + 1, H - 1), w1 = min(w0 + 1, W - 1);
  const float lh = sh - h0, lw = sw - w0;
  const float* top = plane + (long)h0 * W;
  const float* bottom = plane + (long)h1 * W;
  const float t = top[w0] + lw * (top[w1] - top[w0]);
  const float b = bottom[w0] + lw * (bottom[w1] - bottom[w0]);
  y[r * OW + j] = t + lh * (b - t);
}
