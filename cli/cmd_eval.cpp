// kforge eval: check and time one kernel file, or every seed of a task or suite, and store the
// results in the kernel library.
#include <algorithm>
#include <filesystem>
#include <future>
#include <sstream>
#include <unistd.h>

#include "agent/worker_pool.hpp"
#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge::cli {
namespace {

struct EvalArgs {
  std::string task, suite, kernel, backend = "cpu", db_path, worker;
  std::vector<std::string> workers;  // --workers: a pool evaluates a task's kernels at once
  bool json = false, check_only = false;
  double timeout_s = 180;
  std::uint64_t seed = 0;
};

void print_result(const Task& task, const std::string& origin, const EvalResult& r) {
  // Messages such as "crash: SIGSEGV" or "timeout after 10 s" already say the status.
  const std::string status = to_string(r.status);
  const std::string why = r.message.rfind(status, 0) == 0 ? r.message
                          : r.message.empty()             ? status
                                                          : status + ": " + r.message;
  fmt::print("{} {} {}\n", task.id(), origin, why);
  for (const auto& s : r.shapes) {
    std::string line = fmt::format("  {} {:<16}", s.bench ? "bench" : "check",
                                   shape_label(s.dims) + (s.held_out ? " (held out)" : ""));
    if (!s.correct) {
      std::vector<std::string> bad;
      for (const auto& m : s.mismatches)
        bad.push_back(fmt::format("{}[{}]={} want {}", m.tensor, m.index, m.got, m.want));
      line += fmt::format(" FAIL {} wrong, max_abs_err={:.3g}  {}", s.wrong_elements, s.max_abs_error,
                          fmt::join(bad, "; "));
    } else if (s.timing) {
      const TimingStats& t = *s.timing;
      line += fmt::format(" median {:.2f} us  p20-p80 {:.2f}-{:.2f} us  n={} cv={:.1f}%", t.median_us, t.p20_us,
                          t.p80_us, t.n, 100 * t.cv);
      if (s.gbps > 0) line += fmt::format("  {:.1f} GB/s", s.gbps);
      if (s.gflops > 0) line += fmt::format("  {:.2f} GFLOP/s", s.gflops);
      if (s.roofline_pct > 0) line += fmt::format("  {:.0f}% of roofline", s.roofline_pct);
      if (s.speedup > 0) line += fmt::format("  {:.2f}x vs {}", s.speedup, r.baseline);
    } else {
      line += fmt::format(" pass max_abs_err={:.3g}", s.max_abs_error);
    }
    fmt::print("{}\n", line);
  }
  if (r.usage.registers >= 0)
    fmt::print("  {} registers, {} bytes spilled, {} bytes static shared memory, {} bytes of code\n", r.usage.registers,
               r.usage.spill_bytes, r.usage.shared_bytes, r.code_bytes);
  if (r.verified) fmt::print("  re-verified in a fresh worker with a fresh seed\n");
  if (r.status == EvalStatus::compile_error) fmt::print("{}\n", r.log);
}

// Whether an ok result of kernel `key` is a new best to re-verify before it counts: no earlier
// evaluation of this kernel on `device` was re-verified, and it beats every other kernel's latest
// ok evaluation there.
Result<bool> needs_reverification(const KernelStore& store, const std::string& task, const std::string& device,
                                  const std::string& key, double median_us) {
  ListFilter filter;
  filter.op = task;
  auto rows = store.list(filter);
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (row.latest.device != device || row.latest.status != "ok") continue;
    if (row.kernel.key == key) {
      if (row.latest.verified) return false;
      continue;
    }
    const double us = geomean_median_us(row.latest);
    if (us > 0 && us <= median_us) return false;
  }
  return true;
}

// The tasks that --task or --suite name.
Result<std::vector<Task>> tasks_to_evaluate(const std::string& root, const EvalArgs& args) {
  if (!args.task.empty() && !args.suite.empty())
    return make_error(ErrorKind::invalid_input, "give --task or --suite, not both");
  if (!args.task.empty()) {
    auto task = find_task(root, args.task);
    if (!task) return task.error();
    std::vector<Task> tasks;
    tasks.push_back(std::move(*task));
    return tasks;
  }
  if (!args.suite.empty()) {
    if (!args.kernel.empty()) return make_error(ErrorKind::invalid_input, "--kernel needs --task, not --suite");
    return load_tasks(root, args.suite);
  }
  return make_error(ErrorKind::invalid_input, "say what to evaluate: --task SUITE/NAME [--kernel FILE] or --suite NAME");
}

struct SummaryRow {
  std::string task, variant, status;
  double geomean_us, speedup;
};

// The table after several kernels: speedup against the task's baseline (its naive seed), timed
// interleaved in the same child.
void print_summary(const std::vector<SummaryRow>& rows) {
  fmt::print("\n{:<16} {:<22} {:<14} {:>14} {:>12}\n", "TASK", "KERNEL", "STATUS", "GEOMEAN us", "vs baseline");
  for (const auto& row : rows) {
    std::string speedup = row.speedup > 0 ? fmt::format("{:.2f}x", row.speedup) : "-";
    fmt::print("{:<16} {:<22} {:<14} {:>14.2f} {:>12}\n", row.task, row.variant, row.status, row.geomean_us, speedup);
  }
}

int run_eval(const Context& context, const EvalArgs& args) {
  auto loaded = tasks_to_evaluate(context.resolved_tasks_dir(), args);
  if (!loaded) return report(loaded.error());
  std::vector<Task> tasks = std::move(*loaded);

  // Read the kernel before anything is written, so a bad file changes nothing.
  std::optional<Candidate> user_kernel;
  if (!args.kernel.empty()) {
    auto source = read_file(args.kernel);
    if (!source) return report(source.error());
    auto candidate = parse_candidate(std::move(*source), args.kernel);
    if (!candidate) return report(candidate.error());
    user_kernel = std::move(*candidate);
  }
  auto store = KernelStore::open(args.db_path);
  if (!store) return report(store.error());
  RunRecord run;
  run.id = new_run_id(), run.kforge_version = KFORGE_VERSION, run.command = "eval", run.host = host_cpu_name();
  if (auto s = store->record_run(run); !s) return report(s.error());
  auto target = open_target(args.backend);
  if (!target) return report(target.error());
  const std::string device = target->device;
  std::unique_ptr<Backend> backend = std::move(target->backend);

  EvalOptions options;
  options.timeout_s = args.timeout_s;
  options.seed = args.seed;
  options.time_bench_shapes = !args.check_only;

  int exit_code = kExitOk;
  nlohmann::json json_results = nlohmann::json::array();
  std::vector<SummaryRow> rows;
  // One worker for the whole run, reused by every task's evaluations.
  std::vector<std::string> worker_command;
  for (std::istringstream words(args.worker); words;)
    if (std::string w; words >> w) worker_command.push_back(w);
  auto worker = std::make_shared<Worker>(worker_command);
  std::unique_ptr<WorkerPool> pool;
  if (!args.workers.empty()) {
    if (!args.worker.empty()) return report(make_error(ErrorKind::invalid_input, "give --worker or --workers, not both"));
    Target pool_target{std::move(backend), device, "", ""};
    auto started = open_worker_pool(args.workers, pool_target);
    backend = std::move(pool_target.backend);
    if (!started) return report(started.error());
    pool = std::move(*started);
  }
  for (auto& task : tasks) {
    auto evaluator = Evaluator::create(task, *backend, worker);
    if (!evaluator) return report(evaluator.error());
    std::unique_ptr<PoolEvaluator> pooled;
    if (pool) {
      auto created = PoolEvaluator::create(task, *backend, *pool);
      if (!created) return report(created.error());
      pooled = std::move(*created);
    }

    std::vector<std::pair<Candidate, std::string>> kernels;  // candidate, origin
    if (user_kernel) {
      kernels.emplace_back(*user_kernel, std::filesystem::path(args.kernel).filename().string());
    } else {
      for (const auto& path : task.seed_paths) {
        const std::string name = std::filesystem::path(path).filename().string();
        if (!is_seed_for(args.backend, name)) continue;
        auto source = read_file(path);
        auto candidate = source ? parse_candidate(std::move(*source), path) : Result<Candidate>(source.error());
        if (!candidate) {
          exit_code = report(candidate.error());
          continue;
        }
        kernels.emplace_back(std::move(*candidate), name);
      }
    }
    if (kernels.empty() && exit_code == kExitOk)
      return report(make_error(ErrorKind::invalid_input, "{}: no {} seeds to evaluate (give --kernel FILE)", task.id(),
                               args.backend));
    // With a pool, every kernel of the task is under way at once; else each in turn, when its result is asked for.
    std::vector<std::future<EvalResult>> results;
    for (const auto& [candidate, origin] : kernels)
      results.push_back(pooled ? std::async(std::launch::async, [&, c = &candidate, o = &origin] {
        return pooled->evaluate(*c, *o, options);
      })
                               : std::async(std::launch::deferred, [&, c = &candidate, o = &origin] {
                                   return evaluator->evaluate(*c, *o, options);
                                 }));
    for (std::size_t k = 0; k < kernels.size(); ++k) {
      const auto& [candidate, origin] = kernels[k];
      if (!args.json && kernels.size() > 1) fmt::print(stderr, "evaluating {} {} ...\n", task.id(), origin);
      EvalResult result = results[k].get();
      if (pooled && result.worker.empty())
        return report(make_error(ErrorKind::internal, "{} {}: not evaluated: every worker is lost", task.id(), origin));
      const bool seed = std::any_of(task.seed_paths.begin(), task.seed_paths.end(), [&](const std::string& path) {
        return std::filesystem::path(path).filename() == origin;
      });
      const KernelRecord kernel = kernel_record(task, args.backend, candidate, origin, run.id, seed ? "seed" : "user");
      EvaluationRecord evaluation = evaluation_record(task, device, result, run.id);
      // A new best for this task and device counts only once it passes again in a fresh worker
      // with a fresh seed; both evaluations are kept.
      Result<bool> new_best = false;
      if (result.status == EvalStatus::ok && result.speedup > 0)
        new_best = needs_reverification(*store, task.id(), device, kernel.key, geomean_median_us(evaluation));
      if (!new_best) return report(new_best.error());
      auto id = store->record(kernel, evaluation);
      if (!id) return report(id.error());
      if (*new_best) {
        if (!args.json) fmt::print(stderr, "{} {}: a new best; re-verifying in a fresh worker ...\n", task.id(), origin);
        result = pooled ? pooled->reverify(candidate, origin, result, options)
                        : evaluator->reverify(candidate, origin, result, options);
        evaluation = evaluation_record(task, device, result, run.id);
        id = store->record(kernel, evaluation);
        if (!id) return report(id.error());
      }
      if (result.status != EvalStatus::ok && exit_code == kExitOk) exit_code = kExitKernelFailed;
      rows.push_back({task.id(), origin, to_string(result.status), geomean_median_us(evaluation), result.speedup});
      if (args.json) {
        nlohmann::json j = to_json(result);
        j["task"] = task.id();
        j["kernel"] = origin;
        j["kernel_key"] = kernel.key;
        j["evaluation_id"] = *id;
        json_results.push_back(j);
      } else {
        print_result(task, origin, result);
      }
    }
  }
  if (args.json) {
    const auto& out = json_results.size() == 1 && !args.task.empty() ? json_results[0] : json_results;
    // A compiler log may hold bytes that are not UTF-8: replace them rather than fail.
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return exit_code;
  }
  if (rows.size() > 1) print_summary(rows);
  fmt::print("results stored in {}\n", args.db_path);
  return exit_code;
}

}  // namespace

void add_eval_command(CLI::App& app, Context& context) {
  auto args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "Check a kernel against its task's reference, time it, store the result");
  eval->add_option("--task", args->task, "Task as SUITE/NAME, e.g. llm/rmsnorm");
  eval->add_option("--suite", args->suite, "Every task of this suite (with no --kernel: every seed)");
  eval->add_option("--kernel", args->kernel, "Kernel source file (default: the task's seeds)");
  eval->add_option("--backend", args->backend, "Backend to run on: cpu (default), cuda, hip")
      ->check(CLI::IsMember({"cpu", "cuda", "hip"}));
  eval->add_option("--timeout", args->timeout_s, "Seconds one evaluation may take (default 180)")
      ->check(CLI::Range(0.1, 86400.0));
  eval->add_option("--seed", args->seed, "Input seed, a positive integer (default: a fresh secret one)")
      ->check(CLI::PositiveNumber);
  eval->add_flag("--check-only", args->check_only, "Check correctness, skip timing");
  eval->add_flag("--json", args->json, "Print the result as JSON");
  eval->add_option("--worker", args->worker,
                   "Command that starts the evaluation worker (default: this kforge, 'kforge worker')");
  eval->add_option("--workers", args->workers,
                   "Evaluate on a pool of workers, a task's kernels at once: SPEC[,SPEC...] of local:N, "
                   "ssh:HOST[:N], slurm:N[:SRUN_ARGS], cmd:COMMAND");
  add_db_option(*eval, args->db_path);
  eval->callback([&context, args] { context.run = [&context, args] { return run_eval(context, *args); }; });

  auto* worker = app.add_subcommand(
      "worker", "Serve evaluations on stdin/stdout, one frame each way (started by eval and search)");
  auto cpu_arch = std::make_shared<std::string>();
  worker->add_option("--arch", *cpu_arch,
                     "The cpu's -march for what this worker compiles itself (default: native, or $KFORGE_CPU_ARCH)");
  worker->callback([&context, cpu_arch] {
    context.run = [cpu_arch] {
      if (!cpu_arch->empty()) {
        // The compiler's own check, once, before serving: a bad arch is one line, exit 2.
        HostCompilerOptions options;
        options.arch = *cpu_arch;
        if (auto compiler = HostCompiler::create(options); !compiler) return report(compiler.error());
        setenv("KFORGE_CPU_ARCH", cpu_arch->c_str(), 1);  // every cpu backend of this worker compiles for it
      }
      return worker_main(STDIN_FILENO, STDOUT_FILENO);
    };
  });
}

}  // namespace kforge::cli
