// Exemplar for the convolution category: task basic/conv_depthwise.
// NCHW depthwise 3x3 convolution, stride 1, zero padding 1, no bias: y[n,c,h,v] = sum_ij w[c,i,j] x[n,c,h+i-1,v+j-1].
// Arguments: x f32[N,C,H,W] in, w f32[C,3,3] in, y f32[N,C,H,W] out, N, C, H, W.
// @kforge entry: conv_depthwise_f32
// @kforge about: a TX x TY output tile per block with its one-pixel halo staged in shared memory (each input read once from global memory), the channel's nine weights in registers; grid z = plane
// @kforge param: TX=32 in {16,32,64}
// @kforge param: TY=8 in {4,8,16}
// @kforge launch: grid=(ceil_div(W, TX), ceil_div(H, TY), N*C) block=(TX, TY)
// Grid z holds the N*C planes (at most 65535 on NVIDIA; fold planes into x for more).
extern "C" __global__ void conv_depthwise_f32(const float* __restrict__ x, const float* __restrict__ w,
                                              float* __restrict__ y, int N, int C, int H, int W) {
  __shared__ float tile[TY + 2][TX + 2];
  const long plane = blockIdx.z;
  const float* in = x + plane * H * W;
  const int top = blockIdx.y * TY - 1, left = blockIdx.x * TX - 1;  // the halo's first row and column
  // Stage (TY + 2) x (TX + 2) inputs, zeros outside the image: that is the padding.
  for (int t = threadIdx.y * TX + threadIdx.x; t < (TY + 2) * (TX + 2); t += TX * TY) {
    const int r = t / (TX + 2), q = t % (TX + 2), h = top + r, v = left + q;
    tile[r][q] = h >= 0 && h < H && v >= 0 && v < W ? in[(long)h * W + v] : 0.0f;
  }
  const float* k = w + (plane % C) * 9;
  float k9[9];
#pragma unroll
  for (int i = 0; i < 9; ++i) k9[i] = __ldg(k + i);
  __syncthreads();  // every thread reaches this: the bounds check comes after
  const int h = blockIdx.y * TY + threadIdx.y, v = blockIdx.x * TX + threadIdx.x;
  if (h >= H || v >= W) return;
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j) sum += k9[i * 3 + j] * tile[threadIdx.y + i][threadIdx.x + j];
  y[plane * H * W + (long)h * W + v] = sum;
}
