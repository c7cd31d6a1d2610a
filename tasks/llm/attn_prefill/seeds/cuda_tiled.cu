// @kforge entry: attn_prefill_f32
// @kforge about: flash-attention style: one warp per query row, BQ rows per block share K/V tiles of BK keys staged in shared memory; online softmax per key in registers
// @kforge param: BQ=8 in {4,8,16}
// @kforge param: BK=16 in {8,16}
// @kforge launch: grid=(H, ceil_div(S, BQ)) block=(BQ*32)
// The block has BQ*32 threads: BQ warps on NVIDIA (warp 32), BQ/2 on CDNA (wave 64), each warp
// taking rows warp, warp + WARPS, ... of the tile. A lane keeps D/KFORGE_WARP_SIZE output
// elements (D <= 256, a task constraint).
constexpr int MAX_D = 256;

extern "C" __global__ void attn_prefill_f32(const float* q, const float* k, const float* v, float* o, int S, int H,
                                            int KVH, int D, float scale) {
  constexpr int THREADS = BQ * 32, WARPS = THREADS / KFORGE_WARP_SIZE, PER_LANE = MAX_D / KFORGE_WARP_SIZE;
  __shared__ float k_tile[BK][MAX_D], v_tile[BK][MAX_D];
  const int h = blockIdx.x, g = h / (H / KVH), i0 = blockIdx.y * BQ;
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  const float neg_inf = __int_as_float(0xff800000);  // without <cmath>
  constexpr int ROWS = (BQ + WARPS - 1) / WARPS;  // query rows per warp
  float qr[ROWS][PER_LANE], acc[ROWS][PER_LANE], row_max[ROWS], row_sum[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int i = i0 + warp + r * WARPS;
    row_max[r] = neg_inf;
    row_sum[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int d = lane + e * KFORGE_WARP_SIZE;
      qr[r][e] = i < S && d < D ? q[((long)i * H + h) * D + d] * scale : 0.0f;
      acc[r][e] = 0.0f;
    }
  }
  const int last_key = min(S, i0 + BQ) - 1;  // causal: no row of this tile sees beyond it
  for (int j0 = 0; j0 <= last_key; j0 += BK) {
    const int n = min(BK, last_key + 1 - j0);
    __syncthreads();  // the previous tile is no longer read
    for (int x = threadIdx.x; x < n * D; x += THREADS) {
      const int jj = x / D, d = x % D;
      k_tile[jj][d] = k[((long)(j0 + jj) * KVH + g) * D + d];
      v_tile[jj][d] = v[((long)(j0 + jj) * KVH + g) * D + d];
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const int i = i0 + warp + r * WARPS;
      if (warp + r * WARPS >= BQ || i >= S) continue;
      for (int jj = 0; jj < n && j0 + jj <= i; ++jj) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < PER_LANE; ++e) {
          const int d = lane + e * KFORGE_WARP_SIZE;
          if (d < D) dot += qr[r][e] * k_tile[jj][d];
        }
        for (int offset = KFORGE_WARP_SIZE / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        const float new_max = fmaxf(row_max[r], dot);
        const float rescale = __expf(row_max[r] - new_max), p = __expf(dot - new_max);
        row_sum[r] = row_sum[r] * rescale + p;
        row_max[r] = new_max;
#pragma unroll
        for (int e = 0; e < PER_LANE; ++e) {
          const int d = lane + e * KFORGE_WARP_SIZE;
          acc[r][e] = acc[r][e] * rescale + (d < D ? p * v_tile[jj][d] : 0.0f);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int i = i0 + warp + r * WARPS;
    if (warp + r * WARPS >= BQ || i >= S) continue;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int d = lane + e * KFORGE_WARP_SIZE;
      if (d < D) o[((long)i * H + h) * D + d] = acc[r][e] / row_sum[r];
    }
  }
}
