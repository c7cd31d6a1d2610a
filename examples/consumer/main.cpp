// Runs y = alpha * x through the kernel library: the tuned tiny/scale kernel where the library has
// one, else the task's baseline; checks the result and says which kernel ran.
//
//   consumer LIBRARY.db TASKS_DIR [N]      (tiny/scale lives in kforge's tests/data/tasks)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "inference/kernel_library.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s LIBRARY.db [TASKS_DIR] [N]\n", argv[0]);
    return 2;
  }
  kforge::KernelLibraryOptions options;
  options.tasks_dir = argc > 2 ? argv[2] : KFORGE_INSTALLED_TASKS_DIR;
  auto library = kforge::KernelLibrary::open(argv[1], options);
  if (!library) {
    std::fprintf(stderr, "%s\n", library.error().message.c_str());
    return 2;
  }
  const int n = argc > 3 ? std::atoi(argv[3]) : 1024;
  auto scale = library->resolve("tiny/scale", {{"N", n}});  // compiled on first use
  if (!scale) {
    std::fprintf(stderr, "%s\n", scale.error().message.c_str());
    return 1;
  }
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = 0.001f * static_cast<float>(i) - 0.5f;
  int size = n;
  float alpha = 3.0f;
  (*scale)({x.data(), y.data(), &size, &alpha});  // one pointer per task argument
  for (int i = 0; i < n; ++i)
    if (std::fabs(y[i] - alpha * x[i]) > 1e-6f) {
      std::fprintf(stderr, "wrong: y[%d] = %g, want %g\n", i, y[i], alpha * x[i]);
      return 1;
    }
  std::printf("tiny/scale N=%d: %s kernel %s, result correct\n%s\n", n, kforge::to_string(scale->info().match),
              scale->info().key.c_str(), library->explain("tiny/scale", {{"N", n}}).c_str());
  if (auto s = library->flush_misses(); !s) std::fprintf(stderr, "%s\n", s.error().message.c_str());
  return 0;
}
