// kforge db: query, publish and move the kernel library (list, show, best, history, stats,
// export, import, merge, verify). Readers open the file read-only.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "compiler_bridge/compiler_bridge.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct DbArgs {
  std::string db_path, op, backend, status, kernel, device = "auto", out;
  std::vector<std::string> inputs;
  bool json = false;
};

void print_json(const json& j) {
  fmt::print("{}\n", j.dump(2, ' ', false, json::error_handler_t::replace));
}

std::string short_key(const std::string& key) {
  return key.substr(0, 12);
}

std::string or_dash(double v, const char* format_suffix = "") {
  return v > 0 ? fmt::format("{:.2f}{}", v, format_suffix) : "-";
}

json measurement_json(const MeasurementRecord& m) {
  json j = {{"shape", m.shape},
            {"kind", m.bench ? "bench" : "check"},
            {"correct", m.correct},
            {"max_abs_error", m.max_abs_error},
            {"max_rel_error", m.max_rel_error}};
  if (m.n)
    j["timing"] = {{"n", *m.n},
                   {"min_us", m.min_us},
                   {"median_us", m.median_us},
                   {"p20_us", m.p20_us},
                   {"p80_us", m.p80_us},
                   {"mean_us", m.mean_us},
                   {"std_us", m.std_us},
                   {"cv", m.cv},
                   {"gbps", m.gbps},
                   {"gflops", m.gflops},
                   {"baseline_median_us", m.baseline_median_us},
                   {"speedup", m.speedup},
                   {"floor_us", m.floor_us},
                   {"roofline_pct", m.roofline_pct}};
  return j;
}

json evaluation_json(const EvaluationRecord& e) {
  json measurements = json::array();
  for (const auto& m : e.measurements) measurements.push_back(measurement_json(m));
  return {{"evaluation_id", e.id},
          {"evaluation_key", e.key},
          {"status", e.status},
          {"verified", e.verified},
          {"baseline", e.baseline},
          {"speedup", e.speedup},
          {"geomean_us", geomean_median_us(e)},
          {"message", e.message},
          {"device", e.device},
          {"env",
           {{"key", e.env.key()},
            {"kforge_version", e.env.kforge_version},
            {"compiler", e.env.compiler},
            {"driver", e.env.driver},
            {"runtime", e.env.runtime}}},
          {"run_id", e.run_id},
          {"seed", std::to_string(e.seed)},
          {"atol", e.atol},
          {"rtol", e.rtol},
          {"created_at", e.created_at},
          {"resources",
           {{"registers", e.registers},
            {"spill_bytes", e.spill_bytes},
            {"shared_bytes", e.shared_bytes},
            {"code_bytes", e.code_bytes}}},
          {"measurements", measurements}};
}

json kernel_json(const KernelRecord& k) {
  return {{"kernel_key", k.key},        {"task", k.task},     {"backend", k.backend},
          {"entry", k.entry},           {"origin", k.origin}, {"operator", k.operator_name},
          {"parent_key", k.parent_key}, {"run_id", k.run_id}, {"params", json::parse(k.params_json, nullptr, false)}};
}

json best_json(const BestRecord& b) {
  json j = {{"problem_key", b.problem_key},
            {"op", b.op},
            {"op_version", b.op_version},
            {"dtype", b.dtype},
            {"static", b.static_key},
            {"device", b.device_key},
            {"env_key", b.env_key},
            {"kernel_key", b.kernel_key},
            {"median_us", b.median_us},
            {"speedup", b.speedup},
            {"roofline_pct", b.roofline_pct},
            {"samples", b.samples},
            {"stale", b.stale}};
  j["dyn"] = b.dyn ? json(*b.dyn) : json(nullptr);
  return j;
}

// "auto" and "cpu": this machine's CPU; "cuda", "hip": its first device of that backend.
Result<std::string> device_key(const std::string& device) {
  if (device == "auto") return "cpu:" + host_cpu_name();
  if (!kernel_conventions(device) || device == "null") return device;  // a device key itself
  auto target = open_target(device);
  if (!target) return target.error();
  return target->device;
}

int run_list(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto kernels = store->list({a.op, a.backend, a.status});
  if (!kernels) return report(kernels.error());
  if (a.json) {
    json out = json::array();
    for (const auto& k : *kernels) {
      json j = kernel_json(k.kernel);
      j["evaluations"] = k.evaluations;
      j["latest"] = evaluation_json(k.latest);
      out.push_back(j);
    }
    print_json(out);
    return kExitOk;
  }
  size_t task_width = 4, origin_width = 6;
  for (const auto& k : *kernels) {
    task_width = std::max(task_width, k.kernel.task.size());
    origin_width = std::max(origin_width, k.kernel.origin.size());
  }
  fmt::print("{:<12} {:<{}} {:<{}} {:<8} {:<14} {:>12} {:>8} {:>5}  {}\n", "KERNEL", "TASK", task_width, "ORIGIN",
             origin_width, "BACKEND", "STATUS", "GEOMEAN us", "SPEEDUP", "EVALS", "EVALUATED");
  for (const auto& k : *kernels)
    fmt::print("{:<12} {:<{}} {:<{}} {:<8} {:<14} {:>12} {:>8} {:>5}  {}\n", short_key(k.kernel.key), k.kernel.task,
               task_width, k.kernel.origin, origin_width, k.kernel.backend, k.latest.status,
               or_dash(geomean_median_us(k.latest)), or_dash(k.latest.speedup, "x"), k.evaluations,
               k.latest.created_at);
  if (kernels->empty()) fmt::print("(no kernels in {})\n", a.db_path);
  return kExitOk;
}

int run_show(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto found = store->find_kernel(a.kernel);
  if (!found) return report(found.error());
  if (!found->has_value()) return report(make_error(ErrorKind::invalid_input, "{}: no kernel {}", a.db_path, a.kernel));
  const KernelRecord& k = **found;
  // Lineage: parent, grandparent, ... as far as the library knows them.
  std::vector<KernelRecord> lineage;
  for (std::string parent = k.parent_key; !parent.empty() && lineage.size() < 64;) {
    auto p = store->find_kernel(parent);
    if (!p || !p->has_value()) break;
    lineage.push_back(**p);
    parent = (**p).parent_key;
  }
  auto evaluations = store->evaluations(k.key);
  if (!evaluations) return report(evaluations.error());
  if (a.json) {
    json j = kernel_json(k);
    j["source"] = k.source;
    j["lineage"] = json::array();
    for (const auto& p : lineage) j["lineage"].push_back(kernel_json(p));
    j["evaluations"] = json::array();
    for (const auto& e : *evaluations) j["evaluations"].push_back(evaluation_json(e));
    print_json(j);
    return kExitOk;
  }
  fmt::print("kernel {}\n  task {}  backend {}  entry {}\n  origin {}  operator {}  run {}\n  params {}\n", k.key,
             k.task, k.backend, k.entry, k.origin, k.operator_name.empty() ? "-" : k.operator_name,
             k.run_id.empty() ? "-" : k.run_id, k.params_json);
  fmt::print("  lineage: {}", short_key(k.key));
  for (const auto& p : lineage) fmt::print(" <- {} ({})", short_key(p.key), p.origin);
  if (!k.parent_key.empty() && lineage.empty()) fmt::print(" <- {} (not in this library)", short_key(k.parent_key));
  fmt::print("\nevaluations: {}\n", evaluations->size());
  for (const auto& e : *evaluations) {
    fmt::print("  {}  {}  {}{}  seed {}  geomean {} us  speedup {}{}\n", e.created_at, e.device, e.status,
               e.verified ? " (verified)" : "", e.seed, or_dash(geomean_median_us(e)), or_dash(e.speedup, "x"),
               e.baseline.empty() ? "" : " vs " + e.baseline);
    if (!e.message.empty()) fmt::print("    {}\n", e.message);
    if (e.registers >= 0)
      fmt::print("    {} registers, {} bytes spilled, {} bytes static shared memory, {} bytes of code\n", e.registers,
                 e.spill_bytes, e.shared_bytes, e.code_bytes);
    for (const auto& m : e.measurements) {
      std::string line =
          fmt::format("    {} {:<18} {}", m.bench ? "bench" : "check", m.shape, m.correct ? "pass" : "FAIL");
      if (m.n)
        line += fmt::format("  median {:.2f} us  p20-p80 {:.2f}-{:.2f}  n={}  cv={:.1f}%", m.median_us, m.p20_us,
                            m.p80_us, *m.n, 100 * m.cv);
      if (m.roofline_pct > 0)
        line += fmt::format("  {:.0f}% of roofline (floor {:.2f} us)", m.roofline_pct, m.floor_us);
      if (m.speedup > 0) line += fmt::format("  {:.2f}x", m.speedup);
      fmt::print("{}\n", line);
    }
  }
  fmt::print("source:\n{}", k.source);
  if (!k.source.empty() && k.source.back() != '\n') fmt::print("\n");
  return kExitOk;
}

const char* match_name(BestKernels::Match m) {
  switch (m) {
    case BestKernels::Match::exact:
      return "exact";
    case BestKernels::Match::nearest_dyn:
      return "nearest_dyn";
    case BestKernels::Match::nearest_device:
      return "nearest_device";
    case BestKernels::Match::none:
      return "none";
  }
  return "none";
}

// What this device would use for every problem any device has a published kernel for.
int run_best(const DbArgs& a) {
  const auto device_or = device_key(a.device);
  if (!device_or) return report(device_or.error());
  const std::string& device = *device_or;
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto rows = store->best("", a.op);
  if (!rows) return report(rows.error());
  auto library = BestKernels::load(a.db_path, device);
  if (!library) return report(library.error());
  std::map<std::string, const BestRecord*> problems;  // one line per problem, in key order
  for (const auto& b : *rows) problems.try_emplace(b.problem_key, &b);
  json out = json::array();
  if (!a.json)
    fmt::print("device {}\n{:<40} {:<14} {:<12} {:>10} {:>8} {:>9} {:>7}  {}\n", device, "PROBLEM", "MATCH", "KERNEL",
               "MEDIAN us", "SPEEDUP", "ROOFLINE", "SAMPLES", "FROM");
  for (const auto& [key, b] : problems) {
    ProblemQuery q{b->op, b->op_version, b->dtype, b->static_key, b->dyn, ""};
    const auto r = library->resolve(q);
    if (a.json) {
      json j = {{"problem_key", key}, {"match", match_name(r.match)}};
      if (r.entry) j["best"] = best_json(r.entry->best);
      out.push_back(j);
      continue;
    }
    if (!r.entry) {
      fmt::print("{:<40} {:<14} {:<12}\n", key, "none", "-");
      continue;
    }
    const BestRecord& e = r.entry->best;
    fmt::print("{:<40} {:<14} {:<12} {:>10.2f} {:>8} {:>9} {:>7}  {}{}\n", key, match_name(r.match),
               short_key(e.kernel_key), e.median_us, or_dash(e.speedup, "x"), or_dash(e.roofline_pct, "%"), e.samples,
               e.device_key, e.stale ? " (stale env)" : "");
  }
  if (a.json)
    print_json(out);
  else if (problems.empty())
    fmt::print("(nothing published in {}: kernels need a verified, timed ok evaluation)\n", a.db_path);
  return kExitOk;
}

int run_history(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto evaluations = store->task_history(a.op);
  if (!evaluations) return report(evaluations.error());
  auto kernels = store->list({a.op, "", ""});
  if (!kernels) return report(kernels.error());
  std::map<std::string, std::string> origin;
  for (const auto& k : *kernels) origin[k.kernel.key] = k.kernel.origin;
  double best = 0;
  json out = json::array();
  if (!a.json)
    fmt::print("{:<24} {:<12} {:<24} {:<14} {:>12} {:>12}\n", "EVALUATED", "KERNEL", "ORIGIN", "STATUS", "GEOMEAN us",
               "BEST SO FAR");
  for (const auto& e : *evaluations) {
    const double us = geomean_median_us(e);
    if (e.status == "ok" && us > 0 && (best == 0 || us < best)) best = us;
    if (a.json) {
      out.push_back({{"created_at", e.created_at},
                     {"kernel_key", e.kernel_key},
                     {"origin", origin[e.kernel_key]},
                     {"status", e.status},
                     {"geomean_us", us},
                     {"best_so_far_us", best}});
      continue;
    }
    fmt::print("{:<24} {:<12} {:<24} {:<14} {:>12} {:>12}\n", e.created_at, short_key(e.kernel_key),
               origin[e.kernel_key], e.status, or_dash(us), or_dash(best));
  }
  if (a.json)
    print_json(out);
  else if (evaluations->empty())
    fmt::print("(no evaluations of {} in {})\n", a.op, a.db_path);
  return kExitOk;
}

int run_stats(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto s = store->stats();
  if (!s) return report(s.error());
  auto misses = store->misses();
  if (!misses) return report(misses.error());
  if (a.json) {
    json top = json::array();
    for (const auto& [m, count] : *misses)
      top.push_back({{"problem_key", m.problem_key}, {"device", m.device_key}, {"count", count}});
    print_json({{"path", a.db_path},
                {"schema_version", store->schema_version()},
                {"file_bytes", s->file_bytes},
                {"kernels", s->kernels},
                {"evaluations", s->evaluations},
                {"evaluations_by_status", s->evaluations_by_status},
                {"measurements", s->measurements},
                {"problems", s->problems},
                {"devices", s->devices},
                {"envs", s->envs},
                {"runs", s->runs},
                {"best", s->best},
                {"stale_best", s->stale_best},
                {"misses", top},
                {"llm_calls", s->llm_calls}});
    return kExitOk;
  }
  std::vector<std::string> by_status;
  for (const auto& [status, n] : s->evaluations_by_status) by_status.push_back(fmt::format("{} {}", n, status));
  fmt::print("{}: schema {}, {} KiB\n", a.db_path, store->schema_version(), s->file_bytes / 1024);
  fmt::print("kernels      {}\nevaluations  {} ({})\nmeasurements {}\nproblems     {}\n", s->kernels, s->evaluations,
             fmt::join(by_status, ", "), s->measurements, s->problems);
  fmt::print(
      "devices      {}\nenvs         {}\nruns         {}\nbest         {} ({} stale)\nmisses       {}\n"
      "llm calls    {}\n",
      s->devices, s->envs, s->runs, s->best, s->stale_best, misses->size(), s->llm_calls);
  for (size_t i = 0; i < misses->size() && i < 5; ++i)
    fmt::print("  missed {}x {} on {}\n", (*misses)[i].second, (*misses)[i].first.problem_key,
               (*misses)[i].first.device_key);
  return kExitOk;
}

std::string source_extension(const std::string& backend) {
  const auto conventions = kernel_conventions(backend);
  return conventions ? conventions->extension : ".cpp";
}

// A directory of kernels: <task>/<key>_<origin stem><ext>, with <same>.json beside it holding the
// kernel's metadata, its evaluations and the problems it is published for.
int export_directory(const KernelStore& store, const DbArgs& a) {
  auto kernels = store.list();
  if (!kernels) return report(kernels.error());
  auto best = store.best();
  if (!best) return report(best.error());
  int files = 0;
  for (const auto& summary : *kernels) {
    auto kernel = store.find_kernel(summary.kernel.key);
    auto evaluations = store.evaluations(summary.kernel.key);
    if (!kernel || !kernel->has_value() || !evaluations)
      return report(make_error(ErrorKind::database, "{}: cannot read kernel {}", a.db_path, summary.kernel.key));
    const KernelRecord& k = **kernel;
    const fs::path dir = fs::path(a.out) / k.task;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return report(make_error(ErrorKind::io, "{}: cannot create: {}", dir.string(), ec.message()));
    const std::string stem = short_key(k.key) + "_" + fs::path(k.origin).stem().string();
    json meta = kernel_json(k);
    meta["evaluations"] = json::array();
    for (const auto& e : *evaluations) meta["evaluations"].push_back(evaluation_json(e));
    meta["best_for"] = json::array();
    for (const auto& b : *best)
      if (b.kernel_key == k.key) meta["best_for"].push_back(best_json(b));
    std::ofstream source(dir / (stem + source_extension(k.backend)));
    source << k.source;
    std::ofstream(dir / (stem + ".json")) << meta.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    if (!source) return report(make_error(ErrorKind::io, "{}: cannot write", (dir / stem).string()));
    ++files;
  }
  if (a.json)
    print_json({{"out", a.out}, {"kernels", files}});
  else
    fmt::print("exported {} kernels to {}/ (source + .json each)\n", files, a.out);
  return kExitOk;
}

int run_export(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  const std::string ext = fs::path(a.out).extension().string();
  if (ext != ".db" && ext != ".sqlite") return export_directory(*store, a);
  if (auto s = store->export_to(a.out); !s) return report(s.error());
  auto stats = store->stats();
  if (a.json)
    print_json({{"out", a.out}, {"kernels", stats ? stats->kernels : 0}, {"bytes", fs::file_size(a.out)}});
  else
    fmt::print("exported {} kernels to {} ({} KiB)\n", stats ? stats->kernels : 0, a.out, fs::file_size(a.out) / 1024);
  return kExitOk;
}

int import_into(KernelStore& store, const std::vector<std::string>& inputs, bool as_json) {
  json out = json::array();
  for (const auto& input : inputs) {
    auto added = store.import_from(input);
    if (!added) return report(added.error());
    if (as_json)
      out.push_back({{"from", input},
                     {"kernels", added->kernels},
                     {"evaluations", added->evaluations},
                     {"measurements", added->measurements},
                     {"llm_calls", added->llm_calls}});
    else
      fmt::print("{}: added {} kernels, {} evaluations, {} measurements, {} LLM calls\n", input, added->kernels,
                 added->evaluations, added->measurements, added->llm_calls);
  }
  auto best = store.best();
  if (!best) return report(best.error());
  if (as_json)
    print_json({{"into", store.path()}, {"imported", out}, {"best", best->size()}});
  else
    fmt::print("{}: {} published rows\n", store.path(), best->size());
  return kExitOk;
}

int run_import(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path);
  if (!store) return report(store.error());
  return import_into(*store, a.inputs, a.json);
}

int run_merge(const DbArgs& a) {
  std::error_code ec;
  if (fs::exists(a.out, ec))
    return report(make_error(ErrorKind::invalid_input, "{}: exists; merge writes a new file", a.out));
  // Check every input before the output exists, so a bad one leaves nothing behind.
  for (const auto& input : a.inputs)
    if (!fs::is_regular_file(input, ec)) return report(make_error(ErrorKind::io, "{}: no such kernel library", input));
  int code;
  {
    auto store = KernelStore::open(a.out);
    if (!store) return report(store.error());
    code = import_into(*store, a.inputs, a.json);
  }
  if (code != kExitOk)
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(a.out + suffix, ec);
  return code;
}

int run_verify(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto problems = store->verify();
  if (!problems) return report(problems.error());
  auto best = store->best();
  const size_t rows = best ? best->size() : 0;
  if (a.json)
    print_json({{"ok", problems->empty()}, {"problems", *problems}, {"best_rows", rows}});
  else if (problems->empty())
    fmt::print("ok: {} passes integrity_check; {} published rows, every kernel's source matches its key\n", a.db_path,
               rows);
  else
    for (const auto& p : *problems) fmt::print("{}: {}\n", a.db_path, p);
  return problems->empty() ? kExitOk : kExitKernelFailed;
}

int run_gc(const DbArgs& a) {
  auto store = KernelStore::open(a.db_path);  // read-write: also migrates an older schema
  if (!store) return report(store.error());
  auto g = store->gc();
  if (!g) return report(g.error());
  if (a.json)
    print_json({{"removed", {{"problems", g->problems}, {"envs", g->envs}, {"runs", g->runs}, {"misses", g->misses}}},
                {"bytes_before", g->bytes_before},
                {"bytes_after", g->bytes_after}});
  else
    fmt::print(
        "{}: removed {} unused problems, {} envs, {} runs, {} old misses; {} KiB -> {} KiB (no kernel, "
        "evaluation or measurement is ever removed)\n",
        a.db_path, g->problems, g->envs, g->runs, g->misses, g->bytes_before / 1024, g->bytes_after / 1024);
  return kExitOk;
}

}  // namespace

void add_db_command(CLI::App& app, Context& context) {
  auto* db = app.add_subcommand("db", "Query, publish and move the kernel library");
  db->require_subcommand(1);
  auto add = [&](const char* name, const char* about, int (*run)(const DbArgs&), bool needs_db = true) {
    auto args = std::make_shared<DbArgs>();
    auto* command = db->add_subcommand(name, about);
    command->add_flag("--json", args->json, "Print JSON");
    if (needs_db) add_db_option(*command, args->db_path);
    command->callback([&context, args, run] { context.run = [args, run] { return run(*args); }; });
    return std::make_pair(command, args);
  };
  {
    auto [c, a] = add("list", "Every kernel with its latest evaluation, newest first", run_list);
    c->add_option("--op,--task", a->op, "Only kernels of this op (task SUITE/NAME)");
    c->add_option("--backend", a->backend, "Only kernels for this backend (cpu, cuda, hip)");
    c->add_option("--status", a->status, "Only kernels whose latest evaluation has this status");
  }
  {
    auto [c, a] = add("show", "A kernel: source, lineage, every evaluation and measurement", run_show);
    c->add_option("kernel", a->kernel, "Kernel key, or its first characters (at least 4)")->required();
  }
  {
    auto [c, a] = add("best", "What a device would use for each published problem (exact, nearest, none)", run_best);
    c->add_option("--op", a->op, "Only this op (task SUITE/NAME)");
    c->add_option("--device", a->device, "auto (this machine's CPU), cpu, cuda, hip (this machine's first such device) or a device key, e.g. nvidia:sm_90:132");
  }
  {
    auto [c, a] = add("history", "A task's evaluations in order, with the best time so far", run_history);
    c->add_option("--task,--op", a->op, "Task as SUITE/NAME")->required();
  }
  add("stats", "Row counts, statuses, published rows, top misses", run_stats);
  {
    auto [c, a] = add("export", "A single-file snapshot (OUT.db) or a directory of kernel sources", run_export);
    c->add_option("--out", a->out, "FILE.db (a snapshot) or DIR (sources and metadata)")->required();
  }
  {
    auto [c, a] = add("import", "Add another library's rows to --db, then republish best", run_import);
    c->add_option("files", a->inputs, "Kernel library files")->required();
  }
  {
    auto [c, a] = add("merge", "Merge libraries into a new file; best recomputed", run_merge, false);
    c->add_option("files", a->inputs, "Kernel library files")->required()->expected(2, -1);
    c->add_option("--out", a->out, "The new merged file")->required();
  }
  add("verify", "integrity_check, and every published kernel's source re-hashed", run_verify);
  add("gc", "Remove unused problems/envs/runs and old misses, VACUUM; migrates an older schema", run_gc);
}

}  // namespace kforge::cli
