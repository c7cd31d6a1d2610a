// @kforge entry: rmsnorm_f32
// @kforge about: WRONG on purpose: asks for 100 GiB of scratch memory, and touches it
#include <cstdlib>
#include <cstring>
char* volatile kept;  // escapes, so the compiler cannot drop the allocation
extern "C" void rmsnorm_f32(const float*, const float*, float* y, int, int, float) {
  const size_t bytes = size_t{100} << 30;
  kept = static_cast<char*>(std::malloc(bytes));
  std::memset(kept, 1, bytes);  // a null pointer when refused: the process dies here
  y[0] = kept[bytes - 1];
}
