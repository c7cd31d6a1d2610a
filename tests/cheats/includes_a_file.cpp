// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: includes a file of the machine by path, to leak it through the compiler's log
// expect: rejected_cheat
// expect-message: includes a file, not a library header
#include "/etc/hostname"
extern "C" void rmsnorm_f32(const float*, const float*, float*, int, int, float) {}
