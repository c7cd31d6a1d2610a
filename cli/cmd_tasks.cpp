// kforge tasks list: what the task suites hold. kforge tasks check: whether every seed of every
// task passes against its reference on every backend this machine has, and how fast.
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"

namespace kforge::cli {
namespace {

const char* role_name(ArgRole r) {
  switch (r) {
    case ArgRole::in:
      return "in";
    case ArgRole::out:
      return "out";
    case ArgRole::inout:
      return "inout";
    case ArgRole::size:
      return "size";
    case ArgRole::scalar:
      return "scalar";
  }
  return "";
}

// "x f32[M,N] in, w f32[N] in, y f32[M,N] out, M, N, eps=1e-05"
std::string signature(const Task& task) {
  std::vector<std::string> parts;
  for (const auto& a : task.args) {
    if (a.is_tensor()) {
      std::vector<std::string> dims;
      for (const auto& d : a.shape) dims.push_back(d.text());
      parts.push_back(
          fmt::format("{} {}[{}] {}", a.name, dtype_name(a.dtype), fmt::join(dims, ","), role_name(a.role)));
    } else if (a.role == ArgRole::scalar) {
      parts.push_back(fmt::format("{}={:g}", a.name, a.value));
    } else {
      parts.push_back(a.name);
    }
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

nlohmann::json task_json(const Task& task) {
  nlohmann::json args = nlohmann::json::array();
  for (const auto& a : task.args) {
    nlohmann::json arg = {{"name", a.name}, {"type", dtype_name(a.dtype)}, {"role", role_name(a.role)}};
    if (a.is_tensor()) {
      std::vector<std::string> dims;
      for (const auto& d : a.shape) dims.push_back(d.text());
      arg["shape"] = dims;
    }
    if (a.role == ArgRole::scalar) arg["value"] = a.value;
    args.push_back(arg);
  }
  std::vector<std::string> seeds;
  for (const auto& s : task.seed_paths) seeds.push_back(std::filesystem::path(s).filename().string());
  return {{"name", task.id()},
          {"suite", task.suite},
          {"task", task.name},
          {"category", task.category},
          {"description", task.description},
          {"args", args},
          {"tolerance", {{"atol", task.atol}, {"rtol", task.rtol}}},
          {"flops", task.flops ? task.flops->text() : ""},
          {"bytes", task.bytes ? task.bytes->text() : ""},
          {"bench", task.bench_shapes},
          {"check", task.check_shapes},
          {"seeds", seeds},
          {"dir", task.dir}};
}

struct CheckArgs {
  std::string suite, task, backend;
  bool json = false, check_only = false;
};

// One line of the check table.
struct CheckRow {
  std::string task, backend, kernel, status, message;
  bool compiled_only = false;  // no device: compiled, not run
  double median_us = 0, gbps = 0, gflops = 0, roofline_pct = 0, speedup = 0;
  int registers = -1, spill_bytes = -1;
};

// The row for a run: geometric means over the bench shapes (the largest shape's throughput).
CheckRow row_for(const EvalResult& r) {
  CheckRow row;
  row.status = to_string(r.status);
  row.message = r.message;
  row.speedup = r.speedup;
  double log_us = 0, log_roof = 0;
  int timed = 0;
  for (const auto& s : r.shapes) {
    if (!s.timing) continue;
    log_us += std::log(s.timing->median_us);
    if (s.roofline_pct > 0) log_roof += std::log(s.roofline_pct);
    ++timed;
    row.gbps = s.gbps, row.gflops = s.gflops;
  }
  if (timed) row.median_us = std::exp(log_us / timed);
  if (timed && log_roof != 0) row.roofline_pct = std::exp(log_roof / timed);
  return row;
}

int run_check(const Context& context, const CheckArgs& args) {
  std::vector<Task> tasks;
  if (!args.task.empty()) {
    auto task = find_task(context.resolved_tasks_dir(), args.task);
    if (!task) return report(task.error());
    tasks.push_back(std::move(*task));
  } else {
    auto all = load_tasks(context.resolved_tasks_dir(), args.suite);
    if (!all) return report(all.error());
    tasks = std::move(*all);
  }
  auto cache = CompileCache::open();
  if (!cache) return report(cache.error());
  const auto host = make_host_backend({.compiler = "", .cache_dir = cache->dir()});
  if (Status s = host->compiler_status(); !s) return report(s.error());
  std::vector<std::string> backends = {"cpu", "cuda", "hip"};
  if (!args.backend.empty()) backends = {args.backend};

  EvalOptions options;
  options.time_bench_shapes = !args.check_only;
  auto worker = std::make_shared<Worker>();
  std::vector<CheckRow> rows;
  // First the tasks themselves: each reference must compute from its inputs (run on the host, in
  // the worker's sandbox, on the check shapes). A task that fails is a row of its own, and its
  // seeds are not checked against it.
  std::set<std::string> bad_tasks;
  for (const Task& task : tasks) {
    auto evaluator = Evaluator::create(task, *host, worker);
    if (!evaluator) return report(evaluator.error());
    if (Status s = evaluator->check_reference(); !s) {
      if (s.error().kind != ErrorKind::invalid_input) return report(s.error());
      CheckRow row;
      row.task = task.id(), row.backend = "host", row.kernel = "reference.cpp", row.status = "bad_task";
      row.message = s.error().message;
      rows.push_back(std::move(row));
      bad_tasks.insert(task.id());
    }
  }
  for (const std::string& name : backends) {
    auto backend = make_backend(name, *cache);
    if (!backend) return report(backend.error());
    if (Status s = (*backend)->compiler_status(); !s) {
      if (!args.backend.empty()) return report(s.error());
      fmt::print(stderr, "{}: skipped: {}\n", name, s.error().message);
      continue;
    }
    const auto devices = (*backend)->devices();
    const bool run_here = devices && !devices->empty();
    for (const Task& task : tasks) {
      if (bad_tasks.count(task.id())) continue;
      std::optional<Evaluator> evaluator;
      if (run_here) {
        auto e = Evaluator::create(task, **backend, worker);
        if (!e) return report(e.error());
        evaluator.emplace(std::move(*e));
      }
      for (const std::string& path : task.seed_paths) {
        const std::string file = std::filesystem::path(path).filename().string();
        if (!(*backend)->conventions().is_seed(file)) continue;
        auto source = read_file(path);
        auto candidate = source ? parse_candidate(std::move(*source), path) : Result<Candidate>(source.error());
        CheckRow row;
        if (!candidate) {
          row.status = "bad_file";
          row.message = candidate.error().message;
        } else if (evaluator) {
          if (!args.json) fmt::print(stderr, "checking {} {} {} ...\n", task.id(), name, file);
          row = row_for(evaluator->evaluate(*candidate, file, options));
        } else {  // a GPU backend with no device here: compile for its default target, say so
          auto binary = compile_kernel(**backend, task, *candidate, file);
          row.compiled_only = true;
          row.status = binary ? "compiled" : "compile_error";
          if (binary) {
            row.message = fmt::format("compile-checked only for {}: no {} device here", binary->arch, name);
            row.registers = binary->usage.registers;
            row.spill_bytes = binary->usage.spill_bytes;
          } else {
            row.message = binary.error().message;
          }
        }
        row.task = task.id(), row.backend = name, row.kernel = file;
        rows.push_back(std::move(row));
      }
      // A cuBLAS baseline is host C++; with a device, every evaluation above timed it.
      if ((*backend)->conventions().vendor == "nvidia" && !run_here && !task.cuda_baseline_path.empty()) {
        auto binary = compile_gpu_host_baseline(*host, task);
        CheckRow row;
        row.task = task.id(), row.backend = name;
        row.kernel = std::filesystem::path(task.cuda_baseline_path).filename().string();
        row.compiled_only = true;
        row.status = binary ? "compiled" : "compile_error";
        row.message = binary ? "the vendor baseline (host C++), compile-checked only: no cuda device here"
                             : binary.error().message;
        rows.push_back(std::move(row));
      }
    }
  }

  const bool all_passed = std::all_of(rows.begin(), rows.end(), [](const CheckRow& r) {
    return r.status == "ok" || r.status == "compiled";
  });
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows)
      out.push_back({{"task", r.task}, {"backend", r.backend}, {"kernel", r.kernel}, {"status", r.status},
                     {"message", r.message}, {"compiled_only", r.compiled_only}, {"median_us", r.median_us},
                     {"gbps", r.gbps}, {"gflops", r.gflops}, {"roofline_pct", r.roofline_pct},
                     {"speedup", r.speedup}, {"registers", r.registers}, {"spill_bytes", r.spill_bytes}});
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return !bad_tasks.empty() ? kExitBadInput : all_passed ? kExitOk : kExitKernelFailed;
  }
  fmt::print("{:<20} {:<5} {:<22} {:<14} {:>12} {:>9} {:>9} {:>9} {:>8}\n", "TASK", "BACK", "KERNEL", "STATUS",
             "MEDIAN us", "GB/s", "GFLOP/s", "ROOFLINE", "SPEEDUP");
  int compiled_only = 0;
  for (const auto& r : rows) {
    auto number = [](double v, const char* format) { return v > 0 ? fmt::format(fmt::runtime(format), v) : "-"; };
    fmt::print("{:<20} {:<5} {:<22} {:<14} {:>12} {:>9} {:>9} {:>9} {:>8}\n", r.task, r.backend, r.kernel, r.status,
               number(r.median_us, "{:.2f}"), number(r.gbps, "{:.1f}"), number(r.gflops, "{:.2f}"),
               number(r.roofline_pct, "{:.0f}%"), number(r.speedup, "{:.2f}x"));
    compiled_only += r.compiled_only;
    if (r.status != "ok" && r.status != "compiled") fmt::print("    {}\n", r.message);
  }
  if (compiled_only)
    fmt::print("\n{} GPU kernels were compile-checked only (seeds for sm_90 on cuda, gfx90a on hip; cuBLAS baselines "
               "for the host): this machine has no device for them.\n", compiled_only);
  fmt::print("{} of {} passed\n",
             std::count_if(rows.begin(), rows.end(), [](const CheckRow& r) { return r.status == "ok" || r.status == "compiled"; }),
             rows.size());
  if (!bad_tasks.empty())
    fmt::print("{} task(s) failed validation: their references do not compute from their inputs\n", bad_tasks.size());
  return !bad_tasks.empty() ? kExitBadInput : all_passed ? kExitOk : kExitKernelFailed;
}

}  // namespace

void add_tasks_command(CLI::App& app, Context& context) {
  auto* tasks = app.add_subcommand("tasks", "Inspect the task suites");
  tasks->require_subcommand(1);
  auto* list = tasks->add_subcommand("list", "List the tasks of every suite, or of one");
  auto suite = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  list->add_option("--suite", *suite, "Only this suite (e.g. llm)");
  list->add_flag("--json", *json, "Print a JSON array of tasks");
  list->callback([&context, suite, json] {
    context.run = [&context, suite, json] {
      auto tasks = load_tasks(context.resolved_tasks_dir(), *suite);
      if (!tasks) return report(tasks.error());
      if (*json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& t : *tasks) out.push_back(task_json(t));
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
      }
      fmt::print("{:<18} {:<14} {:>5}  {}\n", "TASK", "CATEGORY", "SEEDS", "SIGNATURE");
      std::map<std::string, std::map<std::string, int>> coverage;  // suite -> category -> tasks
      for (const auto& t : *tasks) {
        fmt::print("{:<18} {:<14} {:>5}  {}\n", t.id(), t.category, t.seed_paths.size(), signature(t));
        ++coverage[t.suite][t.category];
      }
      for (const auto& [name, categories] : coverage) {
        std::vector<std::string> counts, missing;
        int total = 0;
        for (const auto& [category, n] : categories) {
          counts.push_back(fmt::format("{} {}", category, n));
          total += n;
        }
        for (const auto& category : task_categories())
          if (!categories.count(category)) missing.push_back(category);
        fmt::print("\nsuite {}: {} tasks in {} of {} categories: {}\n", name, total, categories.size(),
                   task_categories().size(), fmt::join(counts, ", "));
        if (!missing.empty()) fmt::print("  no task yet: {}\n", fmt::join(missing, ", "));
      }
      return kExitOk;
    };
  });

  auto check_args = std::make_shared<CheckArgs>();
  auto* check = tasks->add_subcommand(
      "check", "Every seed of every task against its reference, on every backend here (GPU seeds without a device: "
               "compile-checked)");
  check->add_option("--suite", check_args->suite, "Only this suite");
  check->add_option("--task", check_args->task, "Only this task (SUITE/NAME)");
  check->add_option("--backend", check_args->backend, "Only this backend: cpu, cuda, hip")
      ->check(CLI::IsMember({"cpu", "cuda", "hip"}));
  check->add_flag("--check-only", check_args->check_only, "Correctness only, no timing");
  check->add_flag("--json", check_args->json, "Print a JSON array of rows");
  check->callback([&context, check_args] { context.run = [&context, check_args] { return run_check(context, *check_args); }; });
}

}  // namespace kforge::cli
