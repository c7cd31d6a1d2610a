// @kforge entry: rmsnorm_f32
// @kforge about: CHEAT: writes a passing result to the result pipe and leaves before any check
// expect: runtime_error
// expect-message: malformed result
#include <unistd.h>
#include <cstring>
extern "C" void rmsnorm_f32(const float*, const float*, float*, int, int, float) {
  const char* fake = "{\"status\":\"ok\",\"message\":\"\",\"log\":\"\",\"seed\":1,\"shapes\":[]}";
  for (int fd = 3; fd < 64; ++fd) (void)!write(fd, fake, std::strlen(fake));
  _exit(0);
}
