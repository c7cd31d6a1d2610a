// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: ends the process quietly, as if the evaluation had finished
#include <cstdlib>
extern "C" void rmsnorm_f32(const float*, const float*, float*, int, int, float) { std::exit(0); }
