// Candidates evaluated per minute by a pool of workers (issue 20), for each --workers spec given,
// as ratios to the first: correctness-only evaluations (no timing), so that workers sharing this
// machine's cores do not turn it into a timing contest. The candidate is the task's first cpu seed,
// compiled once (the coordinator compiles ahead; here that is a cache hit), evaluated `--evals`
// times by as many threads as the pool has workers, after one warm-up evaluation per worker.
//
//   build/bench/bench_workers [--task llm/rmsnorm|DIR] [--evals 60] local:1 local:2 [slurm:1 slurm:2 ...]
//
// bench/bench_workers.sh runs it on local workers and on a single-node Slurm cluster it starts.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agent/worker_pool.hpp"

using namespace kforge;

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "worker") return worker_main();  // what local: and slurm: start
  std::string task_name = "llm/rmsnorm";
  int evals = 60;
  std::vector<std::string> specs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--task" && i + 1 < argc) task_name = argv[++i];
    else if (a == "--evals" && i + 1 < argc) evals = std::max(1, std::atoi(argv[++i]));
    else specs.push_back(a);
  }
  if (specs.empty()) specs = {"local:1", "local:2"};
  // SUITE/NAME of the source tree's tasks, or a task's folder.
  auto task = load_task(std::filesystem::is_directory(task_name) ? task_name
                                                                  : std::string(KFORGE_SOURCE_DIR) + "/tasks/" + task_name);
  auto cache = CompileCache::open();
  auto backend = cache ? make_backend("cpu", *cache) : Result<std::unique_ptr<Backend>>(cache.error());
  if (!task || !backend) {
    fmt::print(stderr, "bench_workers: {}\n", !task ? task.error().message : backend.error().message);
    return 2;
  }
  std::string seed_path;
  for (const auto& p : task->seed_paths)
    if (seed_path.empty() && is_seed_for("cpu", std::filesystem::path(p).filename().string())) seed_path = p;
  auto source = read_file(seed_path);
  auto candidate = source ? parse_candidate(std::move(*source), seed_path) : Result<Candidate>(source.error());
  if (!candidate) {
    fmt::print(stderr, "bench_workers: {}: {}\n", task_name, candidate.error().message);
    return 2;
  }
  const std::string file_name = std::filesystem::path(seed_path).filename().string();
  EvalOptions options;
  options.time_bench_shapes = false;

  fmt::print("{} ({}), {} correctness-only evaluations per pool, {} cores here\n", task_name, file_name, evals,
             std::thread::hardware_concurrency());
  fmt::print("{:<22} {:>8} {:>14} {:>8}\n", "WORKERS", "EVALS", "PER MINUTE", "RATIO");
  double first = 0;
  for (const std::string& spec : specs) {
    auto parsed = parse_worker_specs({spec});
    auto pool = parsed ? WorkerPool::start(*parsed, "cpu", 0) : Result<std::unique_ptr<WorkerPool>>(parsed.error());
    auto evaluator = pool ? PoolEvaluator::create(*task, **backend, **pool)
                          : Result<std::unique_ptr<PoolEvaluator>>(pool.error());
    if (!evaluator) {
      fmt::print(stderr, "bench_workers: {}: {}\n", spec, evaluator.error().message);
      return 2;
    }
    const int workers = (*pool)->size();
    std::atomic<int> next{0}, failed{0};
    // One thread per worker takes evaluations until `limit` are done.
    auto run = [&](int limit) {
      next = 0;
      std::vector<std::thread> threads;
      for (int t = 0; t < workers; ++t)
        threads.emplace_back([&] {
          while (next++ < limit)
            if ((*evaluator)->evaluate(*candidate, file_name, options).status != EvalStatus::ok) ++failed;
        });
      for (auto& t : threads) t.join();
    };
    run(workers);  // warm-up: every worker has loaded the task once
    const auto start = std::chrono::steady_clock::now();
    run(evals);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_minute = evals / seconds * 60;
    if (first == 0) first = per_minute;
    fmt::print("{:<22} {:>8} {:>14.0f} {:>7.2f}x{}\n", fmt::format("{} ({})", spec, workers), evals, per_minute,
               per_minute / first, failed ? fmt::format("  ({} not ok!)", failed.load()) : "");
    if (failed) return 1;
  }
  return 0;
}
