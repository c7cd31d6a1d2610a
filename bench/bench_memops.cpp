// The memory-bound llm ops against the memory roofline measured in the same run. For each op
// (rmsnorm, add_rmsnorm, swiglu, softmax, rope, kv_append), every cpu seed but the naive one, with
// its default params, and with --db the library's best kernels for the op on this machine (what a
// search found), go through the evaluator (caches flushed before every call, robust statistics)
// at every bench shape: the largest has a working set beyond the last-level cache (each task's
// comment says so), the smallest is where the cost of a call dominates.
//
// Two rooflines. (1) The op's memory twin (bench/memops_twins.cpp: the op's signature, its bytes
// moved as a copy moves them, no arithmetic) is each kernel's baseline, timed call for call with
// it under the same flush, so "% twin" (twin median / kernel median) is the share of the copy
// roofline reached at the same moments of the run: on a shared machine whose bandwidth swings,
// the measure to trust; printed at the largest shape, where the twin streams to memory. (2) Between
// the evaluations the evaluator's probe measures, on every core and a buffer of at least 4x the
// LLC, the read rate and the copy rate; each keeps its best of the run, and "% roof" and "best"
// are the kernel's median and fastest call against that (evaluator/physics.cpp, roofline_seconds).
// At the smallest shape: the fixed cost of a call (median less roofline time).
//
//   build/bench/bench_memops [--tasks rmsnorm,softmax,...] [--db kforge.db]
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "evaluator/evaluator.hpp"
#include "evaluator/internal.hpp"
#include "kernels_db/kernels_db.hpp"

using namespace kforge;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "bench_memops: %s\n", message.c_str());
  return 1;
}

struct Probe {
  double (*read)(long, int) = nullptr;
  double (*copy)(long, int) = nullptr;
  double read_best = 0, copy_best = 0;
  std::vector<double> copies;  // every copy rate measured, to show how much the machine varied
  void measure() {
    const long bytes = memory_probe_bytes();
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    read_best = std::max(read_best, read(bytes, threads));
    copies.push_back(copy(bytes, threads));
    copy_best = std::max(copy_best, copies.back());
  }
  MachineLimits roofline() const {
    MachineLimits m;
    m.read_bytes_per_s = {{0.0, read_best}};
    m.memory_read_bytes_per_s = read_best;
    m.memory_copy_bytes_per_s = copy_best;
    return m;
  }
};

struct Row {
  std::string op, seed;
  Bindings dims;
  double median_us = 0, min_us = 0;
  double of_twin = 0;  // the op's memory twin's median / this median, timed call for call
  std::string failure;
};

// The library's best cpu kernels for `task` on this machine: one per kernel, whatever problems it
// is best at, labelled by where it came from.
Result<std::vector<std::pair<std::string, Candidate>>> tuned_kernels(const std::string& db, const Task& task) {
  std::vector<std::pair<std::string, Candidate>> found;
  auto store = KernelStore::open(db, /*read_only=*/true);
  if (!store) return store.error();
  auto rows = store->best("cpu:" + host_cpu_name(), task.id());
  if (!rows) return rows.error();
  std::set<std::string> seen;
  for (const BestRecord& row : *rows) {
    if (row.stale || !seen.insert(row.kernel_key).second) continue;
    auto kernel = store->find_kernel(row.kernel_key);
    if (!kernel) return kernel.error();
    if (!*kernel) continue;
    // A stored source carries its params as its header's values (the search writes them there).
    auto candidate = parse_candidate((*kernel)->source, (*kernel)->origin);
    if (!candidate) return candidate.error();
    found.emplace_back("tuned:" + (*kernel)->origin.substr((*kernel)->origin.rfind('/') + 1), *candidate);
  }
  return found;
}

constexpr const char* kTwinName = "memops_twin.cpp";

// A temporary folder for the twins, removed on every way out of main.
struct TwinDir {
  std::string path;
  ~TwinDir() {
    std::error_code ignored;
    if (!path.empty()) std::filesystem::remove_all(path, ignored);
  }
};

// `task` with its baseline replaced by its memory twin: bench/memops_twins.cpp under the entry line
// of the task's kernels, written to `dir`.
Result<Task> timed_against_twin(const Task& task, const std::string& entry, const std::string& dir) {
  auto twins = read_file(std::string(KFORGE_SOURCE_DIR) + "/bench/memops_twins.cpp");
  if (!twins) return twins.error();
  Task timed = task;
  timed.cpu_baseline_path = dir + "/" + kTwinName;
  timed.cpu_baseline_libraries.clear();
  const std::string source = "// @kforge entry: " + entry + "\n" + *twins;
  if (auto written = write_file_atomically(timed.cpu_baseline_path, source, Durability::cache); !written)
    return written.error();
  return timed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "worker") return worker_main();  // its own evaluation worker
  std::string task_list = "rmsnorm,add_rmsnorm,swiglu,softmax,rope,kv_append", db;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tasks") == 0 && i + 1 < argc) task_list = argv[++i];
    else if (std::strcmp(argv[i], "--db") == 0 && i + 1 < argc) db = argv[++i];
    else return fail("usage: bench_memops [--tasks rmsnorm,softmax,...] [--db kforge.db]");
  }
  auto host = make_host_backend();
  auto probe_binary = compile_probe(*host);
  if (!probe_binary) return fail(probe_binary.error().message);
  void* library = dlopen(probe_binary->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  Probe probe;
  if (library) {
    probe.read = reinterpret_cast<double (*)(long, int)>(dlsym(library, "kforge_probe_read"));
    probe.copy = reinterpret_cast<double (*)(long, int)>(dlsym(library, "kforge_probe_copy"));
  }
  if (!probe.read || !probe.copy) return fail("the probe " + probe_binary->path + " does not load");

  std::string pattern = (std::filesystem::temp_directory_path() / "kforge-memops-XXXXXX").string();
  if (!mkdtemp(pattern.data())) return fail("mkdtemp: " + std::string(std::strerror(errno)));
  const TwinDir twin_dir{pattern};
  std::vector<Row> rows;
  std::vector<Task> tasks;
  std::stringstream names(task_list);
  for (std::string name; std::getline(names, name, ',');) {
    auto task = find_task(std::string(KFORGE_SOURCE_DIR) + "/tasks", "llm/" + name);
    if (!task) return fail(task.error().message);
    std::vector<std::pair<std::string, Candidate>> kernels;
    for (const auto& path : task->seed_paths) {
      const std::string file = path.substr(path.rfind('/') + 1);
      if (file.rfind("cpu_", 0) != 0 || file == "cpu_naive.cpp") continue;
      auto source = read_file(path);
      auto candidate = source ? parse_candidate(*source, path) : Result<Candidate>(source.error());
      if (!candidate) return fail(candidate.error().message);
      kernels.emplace_back(file, *candidate);
    }
    if (!db.empty()) {
      auto tuned = tuned_kernels(db, *task);
      if (!tuned) return fail(db + ": " + tuned.error().message);
      kernels.insert(kernels.end(), tuned->begin(), tuned->end());
    }
    if (kernels.empty()) return fail(task->id() + " has no cpu seed but the naive one");
    auto timed = timed_against_twin(*task, kernels.front().second.entry, twin_dir.path);
    if (!timed) return fail(timed.error().message);
    auto evaluator = Evaluator::create(*timed, *host);
    if (!evaluator) return fail(evaluator.error().message);
    for (const auto& [label, candidate] : kernels) {
      probe.measure();
      std::fprintf(stderr, "%s %s...\n", task->id().c_str(), label.c_str());
      EvalOptions options;
      options.check_baseline = false;  // the twin moves the bytes without computing the op
      const EvalResult result = evaluator->evaluate(candidate, label, options);
      // A twin that does not build leaves the naive seed as the baseline: then there is no twin.
      if (result.status == EvalStatus::ok && result.baseline.rfind(kTwinName, 0) != 0)
        return fail("the memory twin is not the baseline: " + result.baseline);
      for (const auto& shape : result.shapes)
        if (shape.bench && shape.timing)
          rows.push_back({name, label, shape.dims, shape.timing->median_us, shape.timing->min_us, shape.speedup, ""});
      if (result.status != EvalStatus::ok)
        rows.push_back({name, label, {}, 0, 0, 0, to_string(result.status) + ": " + result.message});
    }
    tasks.push_back(*task);
  }
  probe.measure();

  const MachineLimits roofline = host_roofline(probe.roofline());
  std::printf("memory, every core, on %.0f MiB (the best of the probes in this run): read %.1f GB/s, copy %.1f GB/s "
              "(read + written)\n",
              memory_probe_bytes() / 1048576.0, probe.read_best / 1e9, probe.copy_best / 1e9);
  // % of roofline is against the best probe: a kernel's median meets the memory at its fastest moment
  // of the run; "best" is the kernel's fastest call against it, best against best as the probe is.
  // How far the machine moved meanwhile:
  std::sort(probe.copies.begin(), probe.copies.end());
  std::printf("copy rate over the run's %zu probes: worst %.1f, median %.1f, best %.1f GB/s\n", probe.copies.size(),
              probe.copies.front() / 1e9, probe.copies[probe.copies.size() / 2] / 1e9, probe.copies.back() / 1e9);
  std::printf("%-12s %-26s %-28s %9s %11s %8s %8s %8s %8s %14s\n", "op", "kernel", "shape", "MiB", "median us",
              "GB/s", "% roof", "best", "% twin", "fixed us/call");
  for (const Row& row : rows) {
    if (!row.failure.empty()) {
      std::printf("%-12s %-26s %s\n", row.op.c_str(), row.seed.c_str(), row.failure.c_str());
      continue;
    }
    const Task& task = *std::find_if(tasks.begin(), tasks.end(), [&](const Task& t) { return t.name == row.op; });
    const double bytes = bytes_of(task, row.dims), roof_us = roofline_seconds(task, row.dims, roofline) * 1e6;
    // The smallest shape, where a call's own cost shows: what the median spends beyond the roofline.
    // The largest, beyond the last-level cache, where the twin (streaming to memory) is the roofline.
    const bool smallest = row.dims == task.bench_shapes.front(), largest = row.dims == task.bench_shapes.back();
    std::printf("%-12s %-26s %-28s %9.2f %11.1f %8.1f %7.1f%% %7.1f%% %8s %14s\n", row.op.c_str(), row.seed.c_str(),
                shape_label(row.dims).c_str(), bytes / 1048576.0, row.median_us, bytes / row.median_us / 1e3,
                100 * roof_us / row.median_us, 100 * roof_us / row.min_us,
                largest ? fmt::format("{:.1f}%", 100 * row.of_twin).c_str() : "",
                smallest ? fmt::format("{:.2f}", std::max(0.0, row.median_us - roof_us)).c_str() : "");
  }
  return 0;
}
