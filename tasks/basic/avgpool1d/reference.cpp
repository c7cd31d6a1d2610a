// @kforge entry: avgpool1d_reference
// @kforge about: the oracle: each window summed in double
extern "C" void avgpool1d_reference(const float* x, float* y, int N, int C, int L, int K, int S) {
  const long OL = (L - K) / S + 1;
  for (long r = 0; r < long(N) * C; ++r)
    for (long o = 0; o < OL; ++o) {
      double sum = 0;
      for (long k = 0; k < K; ++k) sum += x[r * L + o * S + k];
      y[r * OL + o] = float(sum / K);
    }
}
