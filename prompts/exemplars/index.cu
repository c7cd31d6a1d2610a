// Exemplar for the index category: task basic/scatter_add.
// for i in order: out[idx[i], :] += src[i, :]; indices repeat, every duplicate is added.
// Arguments: src f32[M,D] in, idx i32[M] in, out f32[V,D] inout, M, V, D.
// @kforge entry: scatter_add_f32
// @kforge about: one warp per src row (ROWS rows per block): the row index is read once per warp, lanes add consecutive elements with atomicAdd (coalesced, duplicates serialise only where they collide)
// @kforge param: BLOCK=256 in {128,256,512}
// @kforge param: ROWS=16 in {4,8,16,32}
// @kforge launch: grid=(ceil_div(M, ROWS)) block=(BLOCK)
// KFORGE_WARP_SIZE is 32 on NVIDIA and 64 on CDNA (the backend defines it): never write 32.
// Launch lines see only params and sizes, so the block is sized in threads and the warp count
// is derived here.
constexpr int WARPS = BLOCK / KFORGE_WARP_SIZE;

extern "C" __global__ void scatter_add_f32(const float* __restrict__ src, const int* __restrict__ idx,
                                           float* __restrict__ out, int M, int V, int D) {
  const int lane = threadIdx.x % KFORGE_WARP_SIZE, warp = threadIdx.x / KFORGE_WARP_SIZE;
  for (int r = warp; r < ROWS; r += WARPS) {
    const long i = (long)blockIdx.x * ROWS + r;
    if (i >= M) return;
    const float* s = src + i * D;
    float* o = out + (long)__ldg(idx + i) * D;
    // Float atomics make the order of the additions to one element vary from run to run: the
    // result differs by rounding only, which the task's tolerance allows.
    for (int d = lane; d < D; d += KFORGE_WARP_SIZE) atomicAdd(o + d, s[d]);
  }
}
