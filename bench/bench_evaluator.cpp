// The evaluator's own overhead for one candidate on a tiny kernel (tests/data/tasks/tiny/scale,
// N=1024: the kernel itself runs in about a microsecond), with and without a compile-cache hit.
// What is measured is everything `kforge eval` pays per candidate: compile (or cache lookup),
// fork, loading, correctness on every shape, and the timing protocol's warm-up and repeats.
//
//   build/bench/bench_evaluator      (prints both, then their ratio, measured in the same run)
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <map>

#include "evaluator/evaluator.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

struct Fixture {
  std::string cache_dir = fs::temp_directory_path() / ("kforge-bench-" + std::to_string(getpid()));
  std::unique_ptr<Backend> compiler = make_host_backend({.compiler = "", .cache_dir = cache_dir});
  Task task = find_task(KFORGE_SOURCE_DIR "/tests/data/tasks", "tiny/scale").value();
  Evaluator evaluator = Evaluator::create(task, *compiler).value();
  Candidate kernel = parse_candidate(read_file(task.seed_paths.front()).value(), task.seed_paths.front()).value();
  ~Fixture() { fs::remove_all(cache_dir); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

EvalOptions options_for(const benchmark::State& state) {
  EvalOptions options;
  options.time_bench_shapes = state.range(0) != 0;
  return options;
}

// range(0): 0 = correctness only (the harness's own cost), 1 = the full protocol with timing.
void BM_EvaluateCacheHit(benchmark::State& state) {
  Fixture& f = fixture();
  const EvalOptions options = options_for(state);
  f.evaluator.evaluate(f.kernel, "k.cpp", options);  // compiles once, outside the timed loop
  for (auto _ : state) {
    EvalResult r = f.evaluator.evaluate(f.kernel, "k.cpp", options);
    if (r.status != EvalStatus::ok) state.SkipWithError(r.message.c_str());
  }
}

void BM_EvaluateCacheMiss(benchmark::State& state) {
  Fixture& f = fixture();
  const EvalOptions options = options_for(state);
  int variant = 0;
  for (auto _ : state) {
    Candidate unique = f.kernel;  // a new comment makes a new content hash: a real compile
    unique.source += fmt::format("\n// variant {} {}\n", getpid(), variant++);
    EvalResult r = f.evaluator.evaluate(unique, "k.cpp", options);
    if (r.status != EvalStatus::ok) state.SkipWithError(r.message.c_str());
  }
}

// Real time: the work happens in child processes, invisible to this process's CPU clock.
BENCHMARK(BM_EvaluateCacheHit)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_EvaluateCacheMiss)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// Keeps each benchmark's mean time so the two can be compared as a ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs)
      if (run.run_type == Run::RT_Iteration)
        milliseconds_[run.benchmark_name()] = run.GetAdjustedRealTime();  // in kMillisecond
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> milliseconds_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "worker") return kforge::worker_main();  // its own evaluation worker
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  for (const char* mode : {"0", "1"}) {
    auto hit = reporter.milliseconds_.find(fmt::format("BM_EvaluateCacheHit/{}/min_time:3.000/real_time", mode));
    auto miss = reporter.milliseconds_.find(fmt::format("BM_EvaluateCacheMiss/{}/min_time:3.000/real_time", mode));
    if (hit == reporter.milliseconds_.end() || miss == reporter.milliseconds_.end() || hit->second <= 0) continue;
    fmt::print("{}: cache miss {:.1f} ms / cache hit {:.1f} ms = {:.2f}x\n",
               mode[0] == '0' ? "correctness only" : "with timing     ", miss->second, hit->second,
               miss->second / hit->second);
  }
  // Repeatability: one kernel of a few milliseconds (gemv 4096x4096 and 14336x4096, the OpenMP
  // seed) evaluated 5 times, each in a fresh worker process: max/min of its medians per shape.
  if (argc > 1 && std::string(argv[1]) == "--no-repeatability") return 0;
  Fixture& f = fixture();
  Task gemv = find_task(KFORGE_SOURCE_DIR "/tasks", "llm/gemv").value();
  Evaluator evaluator = Evaluator::create(gemv, *f.compiler).value();
  const std::string seed_path = KFORGE_SOURCE_DIR "/tasks/llm/gemv/seeds/cpu_omp_simd.cpp";
  Candidate kernel = parse_candidate(read_file(seed_path).value(), seed_path).value();
  // Also the speedup over the baseline timed interleaved in the same worker, the number the search
  // ranks by: a drift of the whole machine between runs moves both, and cancels.
  std::map<std::string, std::vector<double>> medians, speedups, baselines;
  for (int run = 0; run < 5; ++run) {
    evaluator.worker().stop();
    EvalResult r = evaluator.evaluate(kernel, "cpu_omp_simd.cpp");
    for (const auto& s : r.shapes)
      if (s.timing) {
        medians[shape_label(s.dims)].push_back(s.timing->median_us);
        speedups[shape_label(s.dims)].push_back(s.speedup);
        if (s.baseline_timing) baselines[shape_label(s.dims)].push_back(s.baseline_timing->median_us);
        fmt::print("  run {} {}: n={} median {:.0f} us (p20 {:.0f}, p80 {:.0f}), baseline median {:.0f} us\n", run,
                   shape_label(s.dims), s.timing->n, s.timing->median_us, s.timing->p20_us, s.timing->p80_us,
                   s.baseline_timing ? s.baseline_timing->median_us : 0.0);
      }
  }
  auto spread = [](const std::vector<double>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return *lo > 0 ? *hi / *lo : 0.0;
  };
  for (const auto& [shape, values] : medians)
    fmt::print("repeatability, llm/gemv cpu_omp_simd {}: medians {:.0f} us, max/min = {:.3f}; speedups {:.3f}, "
               "max/min = {:.3f}; the machine itself (the baseline's medians) max/min = {:.3f}\n",
               shape, fmt::join(values, " "), spread(values), fmt::join(speedups[shape], " "), spread(speedups[shape]),
               spread(baselines[shape]));
  benchmark::Shutdown();
}
