// kforge workers check: starts the workers of a --workers spec and says who each is; and the pool
// that `search --workers` and `eval --workers` open the same way.
#include "agent/worker_pool.hpp"
#include "cli/cli.hpp"

namespace kforge::cli {

Result<std::unique_ptr<WorkerPool>> open_worker_pool(const std::vector<std::string>& specs, const Target& target) {
  auto parsed = parse_worker_specs(specs);
  if (!parsed) return parsed.error();
  int gpus = 0;
  if (!target.backend->conventions().runs_on_host())
    if (auto devices = target.backend->devices()) gpus = static_cast<int>(devices->size());
  return WorkerPool::start(*parsed, target.backend->name(), gpus,
                           [](const std::string& line) { fmt::print(stderr, "{}\n", line); });
}

namespace {

struct WorkersArgs {
  std::vector<std::string> specs;
  std::string backend = "cpu";
};

int check_workers(const WorkersArgs& args) {
  // A bad spec is bad input before anything starts.
  if (auto parsed = parse_worker_specs(args.specs); !parsed) return report(parsed.error());
  auto target = open_target(args.backend);
  if (!target) return report(target.error());
  auto pool = open_worker_pool(args.specs, *target);
  if (!pool) return report(pool.error());
  fmt::print("{:<18} {:<16} {:<10} {:>6} {:>11}  {}\n", "WORKER", "HOST", "KFORGE", "CORES", "ROUND TRIP", "DEVICES");
  for (int i = 0; i < (*pool)->size(); ++i) {
    const PoolWorkerInfo& w = (*pool)->info(i);
    fmt::print("{:<18} {:<16} {:<10} {:>6} {:>8.2f} ms  {}\n", w.name, w.host, w.version, w.cores, w.latency_ms,
               fmt::join(w.devices, ", "));
  }
  // Who is sent binaries and who compiles for itself: the compile targets compared.
  fmt::print("compile target here: {}\n", (*pool)->target());
  for (int i = 0; i < (*pool)->size(); ++i) {
    const PoolWorkerInfo& w = (*pool)->info(i);
    fmt::print("{:<18} target {}: {}\n", w.name, w.target,
               w.compiles_itself ? "differs, compiles for itself" : "the same, receives binaries");
  }
  fmt::print("{} worker(s) ready for --backend {}\n", (*pool)->size(), args.backend);
  return kExitOk;
}

}  // namespace

void add_workers_command(CLI::App& app, Context& context) {
  auto args = std::make_shared<WorkersArgs>();
  auto* workers = app.add_subcommand("workers", "Evaluation workers on this machine, over ssh or in a Slurm allocation");
  workers->require_subcommand(1);
  auto* check = workers->add_subcommand(
      "check", "Start each worker of SPEC[,SPEC...] and print its host, devices, kforge version and round trip");
  check->add_option("spec", args->specs, "local:N, ssh:HOST[:N], slurm:N[:SRUN_ARGS] or cmd:COMMAND")->required();
  check->add_option("--backend", args->backend, "cpu (default), cuda, hip")->check(CLI::IsMember({"cpu", "cuda", "hip"}));
  check->callback([&context, args] { context.run = [args] { return check_workers(*args); }; });
}

}  // namespace kforge::cli
