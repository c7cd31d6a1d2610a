// Reads the kernel library from C++: for one task, the fastest kernel whose latest evaluation
// passed, with its source, ready to compile and load through compiler_bridge.
//
//   build/examples/best_kernel kforge.db llm/rmsnorm
#include <cmath>
#include <cstdio>

#include "kernels_db/kernels_db.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LIBRARY.db SUITE/TASK\n", argv[0]);
    return 2;
  }
  auto store = kforge::KernelStore::open(argv[1], /*read_only=*/true);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    return 2;
  }
  kforge::ListFilter filter;
  filter.op = argv[2];
  auto kernels = store->list(filter);
  if (!kernels) {
    std::fprintf(stderr, "%s\n", kernels.error().message.c_str());
    return 2;
  }
  const kforge::KernelSummary* best = nullptr;
  double best_us = INFINITY;
  for (const auto& k : *kernels) {
    if (k.latest.status != "ok") continue;
    const double us = kforge::geomean_median_us(k.latest);  // over the timed bench shapes
    if (us > 0 && us < best_us) best = &k, best_us = us;
  }
  if (!best) {
    std::fprintf(stderr, "no passing, timed kernel for %s in %s\n", argv[2], argv[1]);
    return 1;
  }
  auto kernel = store->find_kernel(best->kernel.key);
  if (!kernel || !kernel->has_value()) return 1;
  std::printf("%s: %s (%s), %.2f us geometric mean, params %s\n\n%s", argv[2], best->kernel.origin.c_str(),
              best->kernel.key.c_str(), best_us, (*kernel)->params_json.c_str(), (*kernel)->source.c_str());
  return 0;
}
