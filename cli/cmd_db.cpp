// kforge db: query the kernel library.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge::cli {
namespace {

nlohmann::json measurement_json(const MeasurementRecord& m) {
  nlohmann::json j = {{"shape", m.shape},
                      {"kind", m.bench ? "bench" : "check"},
                      {"correct", m.correct},
                      {"max_abs_error", m.max_abs_error},
                      {"max_rel_error", m.max_rel_error}};
  if (m.n)
    j["timing"] = {{"n", *m.n},          {"min_us", m.min_us},   {"median_us", m.median_us}, {"p20_us", m.p20_us},
                   {"p80_us", m.p80_us}, {"mean_us", m.mean_us}, {"std_us", m.std_us},       {"cv", m.cv},
                   {"gbps", m.gbps},     {"gflops", m.gflops},     {"baseline_median_us", m.baseline_median_us},
                   {"speedup", m.speedup}};
  return j;
}

int run_list(const std::string& db_path, const std::string& task, bool json) {
  auto store = KernelStore::open(db_path, /*read_only=*/true);
  if (!store) return report(store.error());
  auto kernels = store->list(task);
  if (!kernels) return report(kernels.error());
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& k : *kernels) {
      nlohmann::json measurements = nlohmann::json::array();
      for (const auto& m : k.latest.measurements) measurements.push_back(measurement_json(m));
      out.push_back({{"kernel_key", k.kernel.key},
                     {"task", k.kernel.task},
                     {"backend", k.kernel.backend},
                     {"entry", k.kernel.entry},
                     {"params", nlohmann::json::parse(k.kernel.params_json, nullptr, false)},
                     {"origin", k.kernel.origin},
                     {"evaluations", k.evaluations},
                     {"latest",
                      {{"evaluation_id", k.latest.id},
                       {"status", k.latest.status},
                       {"baseline", k.latest.baseline},
                       {"speedup", k.latest.speedup},
                       {"message", k.latest.message},
                       {"device", k.latest.device},
                       {"created_at", k.latest.created_at},
                       {"measurements", measurements}}}});
    }
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return kExitOk;
  }
  size_t task_width = 4, origin_width = 6;
  for (const auto& k : *kernels) {
    task_width = std::max(task_width, k.kernel.task.size());
    origin_width = std::max(origin_width, k.kernel.origin.size());
  }
  fmt::print("{:<12} {:<{}} {:<{}} {:<8} {:<14} {:>12} {:>8} {:>5}  {}\n", "KERNEL", "TASK", task_width, "ORIGIN",
             origin_width, "BACKEND", "STATUS", "GEOMEAN us", "SPEEDUP", "EVALS", "EVALUATED");
  for (const auto& k : *kernels) {
    const double geomean = geomean_median_us(k.latest);
    std::string median = geomean > 0 ? fmt::format("{:.2f}", geomean) : "-";
    const std::string speedup = k.latest.speedup > 0 ? fmt::format("{:.2f}x", k.latest.speedup) : "-";
    fmt::print("{:<12} {:<{}} {:<{}} {:<8} {:<14} {:>12} {:>8} {:>5}  {}\n", k.kernel.key.substr(0, 12), k.kernel.task,
               task_width, k.kernel.origin, origin_width, k.kernel.backend, k.latest.status, median, speedup,
               k.evaluations, k.latest.created_at);
  }
  if (kernels->empty()) fmt::print("(no kernels in {})\n", db_path);
  return kExitOk;
}

}  // namespace

void add_db_command(CLI::App& app, Context& context) {
  auto* db = app.add_subcommand("db", "Query the kernel library");
  db->require_subcommand(1);
  auto* list = db->add_subcommand("list", "Every kernel with its latest evaluation, newest first");
  struct ListArgs {
    std::string db_path, task;
    bool json = false;
  };
  auto args = std::make_shared<ListArgs>();
  list->add_option("--task", args->task, "Only kernels of this task (SUITE/NAME)");
  list->add_flag("--json", args->json, "Print a JSON array");
  add_db_option(*list, args->db_path);
  list->callback(
      [&context, args] { context.run = [args] { return run_list(args->db_path, args->task, args->json); }; });
}

}  // namespace kforge::cli
