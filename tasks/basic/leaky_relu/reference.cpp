// @kforge entry: leaky_relu_reference
// @kforge about: the oracle: a scalar branch per element
extern "C" void leaky_relu_reference(const float* x, float* y, int M, int N, float slope) {
  for (long i = 0; i < long(M) * N; ++i) y[i] = x[i] >= 0.0f ? x[i] : float(double(slope) * x[i]);
}
