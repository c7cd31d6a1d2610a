// Dispatch overhead of KernelLibrary after the first resolve (issue 8: target <= 1 us per op).
// One run times, on a trivial kernel (tiny/scale, N=16: a few ns of work):
//   direct            the kernel's kforge_call through a function pointer (the floor);
//   kept Kernel       a Kernel the caller resolved once and keeps;
//   resolve + call    resolve(op, dims) then the call, every time (a tuned, exact-hit problem);
//   resolve baseline  the same for a problem with no tuned kernel (the baseline; counts a miss);
//   resolve, new dims the dims map built for each call too, as a naive caller would.
// Each line is the median of 7 runs of 1M calls, in ns per op, and as a ratio to direct.
//
//   build/bench/bench_kernel_library
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <vector>

#include "inference/kernel_library.hpp"
#include "kernels_db/kernels_db.hpp"

using namespace kforge;
namespace fs = std::filesystem;

namespace {

constexpr int kCalls = 1'000'000, kRuns = 7;

double ns_per_op(const std::function<void(int)>& body) {
  std::vector<double> runs;
  for (int r = 0; r < kRuns; ++r) {
    const auto start = std::chrono::steady_clock::now();
    body(kCalls);
    const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    runs.push_back(took.count() / kCalls);
  }
  std::sort(runs.begin(), runs.end());
  return runs[kRuns / 2];
}

int fail(const std::string& message) {
  std::fprintf(stderr, "bench_kernel_library: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main() {
  const fs::path dir = fs::temp_directory_path() / ("kforge-bench-lib-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "k.db").string(), device = "cpu:" + host_cpu_name();
  const std::string tasks = std::string(KFORGE_SOURCE_DIR) + "/tests/data/tasks";

  {  // A library with one tuned tiny/scale kernel at N=16 on this CPU.
    KernelRecord k;
    k.task = "tiny/scale", k.backend = "cpu", k.entry = "scale_f32", k.params_json = "{}";
    k.source = "// @kforge entry: scale_f32\nextern \"C\" void scale_f32(const float* x, float* y, int N, float a) {\n"
               "#pragma omp simd\n  for (int i = 0; i < N; ++i) y[i] = a * x[i];\n}\n";
    k.origin = "bench_scale.cpp", k.operator_name = "user";
    k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
    EvaluationRecord e;
    e.device = device, e.status = "ok", e.verified = true, e.env.kforge_version = "bench";
    MeasurementRecord m;
    m.shape = "N=16", m.bench = m.correct = true, m.n = 20, m.median_us = 0.01, m.speedup = 1;
    e.measurements = {m};
    auto store = KernelStore::open(path);
    if (!store) return fail(store.error().message);
    if (auto id = store->record(k, e); !id) return fail(id.error().message);
  }

  KernelLibraryOptions options;
  options.tasks_dir = tasks;
  options.compiler.cache_dir = std::string(KFORGE_BINARY_DIR) + "/test-cache";
  auto lib = KernelLibrary::open(path, options);
  if (!lib) return fail(lib.error().message);

  const Bindings tuned{{"N", 16}}, untuned{{"N", 17}};
  const auto first_start = std::chrono::steady_clock::now();
  auto kernel = lib->resolve("tiny/scale", tuned);
  const std::chrono::duration<double, std::milli> first = std::chrono::steady_clock::now() - first_start;
  if (!kernel) return fail(kernel.error().message);
  if (auto b = lib->resolve("tiny/scale", untuned); !b) return fail(b.error().message);
  std::printf("%s\n%s\nfirst resolve (lookup, compile or compile-cache hit, dlopen): %.1f ms\n\n",
              lib->explain("tiny/scale", tuned).c_str(), lib->explain("tiny/scale", untuned).c_str(), first.count());

  float x[17], y[17];
  for (int i = 0; i < 17; ++i) x[i] = static_cast<float>(i);
  int n16 = 16, n17 = 17;
  float alpha = 2;
  void* args16[] = {x, y, &n16, &alpha};
  void* args17[] = {x, y, &n17, &alpha};
  Kernel::Fn volatile direct_fn = kernel->function();  // volatile: the call stays an indirect call
  const Kernel kept = *kernel;

  const double direct = ns_per_op([&](int calls) {
    for (int i = 0; i < calls; ++i) direct_fn(args16);
  });
  const double held = ns_per_op([&](int calls) {
    for (int i = 0; i < calls; ++i) kept(args16);
  });
  const double resolved = ns_per_op([&](int calls) {
    for (int i = 0; i < calls; ++i) (*lib->resolve("tiny/scale", tuned))(args16);
  });
  const double baseline = ns_per_op([&](int calls) {
    for (int i = 0; i < calls; ++i) (*lib->resolve("tiny/scale", untuned))(args17);
  });
  const double fresh_dims = ns_per_op([&](int calls) {
    for (int i = 0; i < calls; ++i) (*lib->resolve("tiny/scale", {{"N", n16}}))(args16);
  });
  if (y[16] != 32) return fail("the kernel computed the wrong thing");

  std::printf("%-36s %9s %9s %12s\n", "per op (median of 7 x 1M calls)", "ns", "x direct", "overhead ns");
  auto row = [&](const char* name, double ns) {
    std::printf("%-36s %9.1f %9.2f %12.1f\n", name, ns, ns / direct, ns - direct);
  };
  row("direct function-pointer call", direct);
  row("kept Kernel call", held);
  row("resolve + call (tuned, exact)", resolved);
  row("resolve + call (baseline, miss)", baseline);
  row("resolve + call, dims built per call", fresh_dims);
  std::printf("\ndispatch overhead after the first resolve: %.0f ns per op (target <= 1000 ns): %s\n",
              std::max({resolved, baseline, fresh_dims}) - direct,
              std::max({resolved, baseline, fresh_dims}) - direct <= 1000 ? "met" : "NOT met");
  { KernelLibrary closing = std::move(*lib); }  // flushes the misses before the file goes
  fs::remove_all(dir);
  return 0;
}
