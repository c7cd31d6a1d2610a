// @kforge entry: attn_sliding_window_reference
// @kforge about: the oracle: scores over the window, softmax and the weighted sum of v in double
#include <cmath>
#include <vector>

extern "C" void attn_sliding_window_reference(const float* q, const float* k, const float* v, float* o, int BH, int S,
                                              int D, int WIN) {
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> p(S), acc(D);
  for (long b = 0; b < BH; ++b)
    for (long i = 0; i < S; ++i) {
      const long lo = i - WIN + 1 > 0 ? i - WIN + 1 : 0;
      const float* qi = q + (b * S + i) * D;
      double mx = -INFINITY;
      for (long j = lo; j <= i; ++j) {
        double dot = 0;
        for (long d = 0; d < D; ++d) dot += double(qi[d]) * k[(b * S + j) * D + d];
        p[j] = dot * scale;
        mx = p[j] > mx ? p[j] : mx;
      }
      double sum = 0;
      for (long j = lo; j <= i; ++j) sum += p[j] = std::exp(p[j] - mx);
      for (long d = 0; d < D; ++d) acc[d] = 0;
      for (long j = lo; j <= i; ++j)
        for (long d = 0; d < D; ++d) acc[d] += p[j] * v[(b * S + j) * D + d];
      for (long d = 0; d < D; ++d) o[(b * S + i) * D + d] = float(acc[d] / sum);
    }
}
