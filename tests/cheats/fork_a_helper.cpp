// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: forks a process (it could time, report or tamper from outside)
// expect: rejected_cheat
// expect-message: 'fork' starts processes
#include <unistd.h>
extern "C" void rmsnorm_f32(const float*, const float*, float*, int, int, float) {
  if (fork() == 0) _exit(0);
}
