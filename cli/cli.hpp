// cli: the `kforge` command. One file per subcommand; each registers its options on the app and
// leaves a function that runs once parsing succeeded and returns the exit code:
// 0 success, 1 a kernel was evaluated and is not ok, 2 bad input (one line on stderr says why).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {
class WorkerPool;  // agent/worker_pool.hpp
}

namespace kforge::cli {

constexpr int kExitOk = 0, kExitKernelFailed = 1, kExitBadInput = 2;

struct Context {
  std::string tasks_dir;     // --tasks-dir, $KFORGE_TASKS_DIR, ./tasks, or the source tree's
  std::function<int()> run;  // set by the chosen subcommand
  std::string resolved_tasks_dir() const;
  // $KFORGE_PROMPTS_DIR, ./prompts if it has system.txt, else the source tree's prompts/.
  std::string resolved_prompts_dir() const;
};

// Where kernels run: a backend (the cpu, or a GPU's) with its first device.
struct Target {
  std::unique_ptr<Backend> backend;
  std::string device;            // the library's device key: "cpu:<model>", "nvidia:sm_90:132"
  std::string name, arch;        // the device's name and arch ("native" for the cpu)
};
// The backend's compiler and device, or one line saying what is missing.
Result<Target> open_target(const std::string& backend);

// The workers of --workers SPEC[,SPEC...] for `target`'s backend, started (cmd_workers.cpp).
Result<std::unique_ptr<WorkerPool>> open_worker_pool(const std::vector<std::string>& specs, const Target& target);

// --db FILE, default $KFORGE_DB or ./kforge.db.
void add_db_option(CLI::App& command, std::string& db_path);

// Prints "kforge: <message>" to stderr and returns kExitBadInput.
int report(const Error& error);

void add_tasks_command(CLI::App& app, Context& context);
void add_eval_command(CLI::App& app, Context& context);
void add_db_command(CLI::App& app, Context& context);
void add_backend_commands(CLI::App& app, Context& context);
void add_search_command(CLI::App& app, Context& context);
void add_infer_command(CLI::App& app, Context& context);
void add_web_commands(CLI::App& app, Context& context);  // serve, report
void add_workers_command(CLI::App& app, Context& context);

}  // namespace kforge::cli
