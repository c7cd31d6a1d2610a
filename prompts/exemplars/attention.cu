// Exemplar (attention): a kernel for task basic/sdpa, from its seed seeds/cuda_tiled.cu.
// Semantics: o[b,i,:] = sum_j softmax_j(q[b,i,:] . k[b,j,:] / sqrt(D)) * v[b,j,:], no mask (every query sees every key).
// Arguments: q f32[BH,S,D] in, k f32[BH,S,D] in, v f32[BH,S,D] in, o f32[BH,S,D] out, BH, S, D (D <= 256)
// @kforge entry: sdpa_f32
// @kforge about: QT queries per block share every K/V tile staged in shared memory (KT keys at a time, rows padded against bank conflicts); online softmax per query across tiles; each thread owns QT*D/BLOCK outputs in registers
// @kforge param: QT=8 in {4,8}
// @kforge param: KT=16 in {8,16}
// @kforge param: BLOCK=128 in {64,128,256}
// @kforge launch: grid=(ceil_div(S, QT), BH) block=(BLOCK) smem=4*((QT + 2*KT)*(D + 1) + QT*KT + 3*QT)
// Shared memory peaks at 41.7 KB (D = 256, QT = 8, KT = 16): under the 48 KB that needs no opt-in.
extern "C" __global__ void sdpa_f32(const float* q, const float* k, const float* v, float* o, int BH, int S, int D) {
  extern __shared__ float smem[];
  constexpr int PER_THREAD = (QT * 256 + BLOCK - 1) / BLOCK;  // the task keeps D <= 256
  const float neg_inf = __int_as_float(0xff800000);           // without <cmath>
  const int ld = D + 1;  // padded row stride: threads reading one column of a tile hit different banks
  float* qs = smem;                // [QT][ld] the block's queries, pre-scaled by 1/sqrt(D)
  float* ks = qs + QT * ld;        // [KT][ld] the current key tile
  float* vs = ks + KT * ld;        // [KT][ld] the current value tile
  float* p = vs + KT * ld;         // [QT][KT] scores, then unnormalised probabilities
  float* row_max = p + QT * KT;    // [QT] running max of each query's scores
  float* row_sum = row_max + QT;   // [QT] running sum of exp(score - running max)
  float* rescale = row_sum + QT;   // [QT] how much this tile shrinks the earlier sums

  const long base = (long)blockIdx.y * S * D;
  const int i0 = blockIdx.x * QT;
  const float scale = rsqrtf((float)D);
  for (int e = threadIdx.x; e < QT * D; e += BLOCK) {
    const int r = e / D, d = e % D;
    qs[r * ld + d] = i0 + r < S ? q[base + (long)(i0 + r) * D + d] * scale : 0.0f;
  }
  if (threadIdx.x < QT) {
    row_max[threadIdx.x] = neg_inf;
    row_sum[threadIdx.x] = 0.0f;
  }
  float acc[PER_THREAD] = {};  // output e = threadIdx.x + t * BLOCK of the QT x D tile

  for (int j0 = 0; j0 < S; j0 += KT) {
    __syncthreads();  // the previous tile is no longer read (and qs, row_max are written)
    for (int e = threadIdx.x; e < KT * D; e += BLOCK) {  // coalesced: d fastest
      const int r = e / D, d = e % D;
      const bool valid = j0 + r < S;
      ks[r * ld + d] = valid ? k[base + (long)(j0 + r) * D + d] : 0.0f;
      vs[r * ld + d] = valid ? v[base + (long)(j0 + r) * D + d] : 0.0f;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < QT * KT; e += BLOCK) {  // one score per thread and step
      const int r = e / KT, c = e % KT;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qs[r * ld + d] * ks[c * ld + d];
      p[e] = j0 + c < S ? dot : neg_inf;  // keys past the end weigh exp(-inf) = 0
    }
    __syncthreads();
    if (threadIdx.x < QT) {  // the online softmax update, one thread per query
      const int r = threadIdx.x;
      float mx = row_max[r];
      for (int c = 0; c < KT; ++c) mx = fmaxf(mx, p[r * KT + c]);  // finite: key j0 exists
      const float factor = expf(row_max[r] - mx);                  // 0 on the first tile
      float sum = 0.0f;
      for (int c = 0; c < KT; ++c) {
        const float w = expf(p[r * KT + c] - mx);
        p[r * KT + c] = w;
        sum += w;
      }
      row_sum[r] = row_sum[r] * factor + sum;
      row_max[r] = mx;
      rescale[r] = factor;
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < PER_THREAD; ++t) {
      const int e = threadIdx.x + t * BLOCK;
      if (e >= QT * D) break;
      const int r = e / D, d = e % D;
      float a = acc[t] * rescale[r];
      for (int c = 0; c < KT; ++c) a += p[r * KT + c] * vs[c * ld + d];
      acc[t] = a;
    }
  }
#pragma unroll
  for (int t = 0; t < PER_THREAD; ++t) {
    const int e = threadIdx.x + t * BLOCK;
    if (e >= QT * D) break;
    const int r = e / D, d = e % D;
    if (i0 + r < S) o[base + (long)(i0 + r) * D + d] = acc[t] / row_sum[r];
  }
}
