// Compile latency per backend for the seeds of the `llm` suite: cold (a real compile; a unique
// comment defeats the cache) and cache hit (hash, lookup, log read). Issue targets: NVRTC
// <= 150 ms a kernel, a cache hit <= 2 ms. Backends this machine cannot compile for are skipped.
//
//   build/bench/bench_compile       (prints each figure, then cold / hit per backend)
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "compiler_bridge/compiler_bridge.hpp"
#include "evaluator/evaluator.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

struct Fixture {
  std::string dir = fs::temp_directory_path() / ("kforge-bench-compile-" + std::to_string(getpid()));
  CompileCache cache = CompileCache::open(dir).value();
  std::vector<Task> tasks = load_tasks(KFORGE_SOURCE_DIR "/tasks", "llm").value();
  ~Fixture() { fs::remove_all(dir); }

  // The seeds one backend compiles: cpu_* for cpu, cuda_* for cuda and hip.
  std::vector<CompileRequest> seeds(const std::string& backend) const {
    std::vector<CompileRequest> out;
    const std::string prefix = backend == "cpu" ? "cpu_" : "cuda_";
    for (const auto& task : tasks)
      for (const auto& path : task.seed_paths) {
        if (fs::path(path).filename().string().rfind(prefix, 0) != 0) continue;
        auto c = parse_candidate(read_file(path).value(), path).value();
        out.push_back({c.source, fs::path(path).filename().string(), c.param_bindings(), ""});
      }
    return out;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

const char* kBackends[] = {"cpu", "cuda", "hip"};

// range(0): backend index; range(1): 0 cold, 1 cache hit. One iteration compiles every seed,
// so the time per kernel is the figure divided by the counter "kernels".
void BM_Compile(benchmark::State& state) {
  Fixture& f = fixture();
  const std::string name = kBackends[state.range(0)];
  const bool hit = state.range(1) != 0;
  auto backend = make_backend(name, f.cache).value();
  if (auto s = backend->compiler_status(); !s) {
    state.SkipWithError((name + ": " + s.error().message).c_str());
    return;
  }
  auto requests = f.seeds(name);
  for (const auto& r : requests) (void)backend->compile(r);  // warm the cache for the hit case
  static int variant = 0;  // across runs too: benchmark calls this function more than once
  for (auto _ : state) {
    for (auto request : requests) {
      if (!hit) request.source += fmt::format("\n// variant {} {}\n", getpid(), variant++);
      auto binary = backend->compile(request);
      if (!binary || binary->cache_hit != hit) state.SkipWithError("unexpected compile result");
    }
  }
  state.counters["kernels"] = static_cast<double>(requests.size());
}

BENCHMARK(BM_Compile)
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->ArgNames({"backend", "hit"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs)
      if (run.run_type == Run::RT_Iteration && !run.error_occurred)
        per_kernel_ms[run.benchmark_name()] = run.GetAdjustedRealTime() / run.counters.at("kernels").value;
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> per_kernel_ms;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  for (int b = 0; b < 3; ++b) {
    auto name = [&](int hit) { return fmt::format("BM_Compile/backend:{}/hit:{}/min_time:2.000/real_time", b, hit); };
    auto cold = reporter.per_kernel_ms.find(name(0)), hit = reporter.per_kernel_ms.find(name(1));
    if (cold == reporter.per_kernel_ms.end() || hit == reporter.per_kernel_ms.end()) continue;
    fmt::print("{:<4}: cold {:.1f} ms per kernel, cache hit {:.3f} ms per kernel: cold / hit = {:.0f}x\n", kBackends[b],
               cold->second, hit->second, cold->second / hit->second);
  }
  benchmark::Shutdown();
}
