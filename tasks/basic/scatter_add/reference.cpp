// @kforge entry: scatter_add_reference
// @kforge about: the oracle: out copied to double, src rows added in index order, rounded once
#include <vector>

extern "C" void scatter_add_reference(const float* src, const int* idx, float* out, int M, int V, int D) {
  std::vector<double> acc(out, out + long(V) * D);
  for (long i = 0; i < M; ++i)
    for (long d = 0; d < D; ++d) acc[long(idx[i]) * D + d] += src[i * D + d];
  for (long e = 0; e < long(V) * D; ++e) out[e] = float(acc[e]);
}
