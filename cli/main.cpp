#include <cstdlib>
#include <filesystem>

#include "cli/cli.hpp"

namespace kforge::cli {

std::string Context::resolved_tasks_dir() const {
  if (!tasks_dir.empty()) return tasks_dir;
  if (const char* env = std::getenv("KFORGE_TASKS_DIR"); env && *env) return env;
  if (std::filesystem::is_directory("tasks/llm")) return "tasks";
  return KFORGE_DEFAULT_TASKS_DIR;
}

std::string Context::resolved_prompts_dir() const {
  if (const char* env = std::getenv("KFORGE_PROMPTS_DIR"); env && *env) return env;
  if (std::filesystem::is_regular_file("prompts/system.txt")) return "prompts";
  return KFORGE_DEFAULT_PROMPTS_DIR;
}

Result<Target> open_target(const std::string& backend_name) {
  auto cache = CompileCache::open();
  if (!cache) return cache.error();
  auto backend = make_backend(backend_name, *cache);
  if (!backend) return backend.error();
  if (Status s = (*backend)->compiler_status(); !s) return s.error();
  auto devices = (*backend)->devices();
  if (!devices || devices->empty())
    return make_error(ErrorKind::invalid_input,
                      "{}: no device to run on ({}); 'kforge compile --backend {}' compile-checks kernels without one",
                      backend_name, devices ? "none found" : devices.error().message, backend_name);
  Target target;
  target.name = devices->front().name;
  target.arch = devices->front().arch;  // "native" for the cpu
  target.device = device_key(devices->front());  // "cpu:<model>", "nvidia:sm_90:132"
  target.backend = std::move(*backend);
  return target;
}

void add_db_option(CLI::App& command, std::string& db_path) {
  const char* env = std::getenv("KFORGE_DB");
  db_path = env && *env ? env : "kforge.db";
  command.add_option("--db", db_path, "Kernel library file (default: $KFORGE_DB or ./kforge.db)");
}

int report(const Error& error) {
  fmt::print(stderr, "kforge: {}\n", error.message);
  return kExitBadInput;
}

}  // namespace kforge::cli

int main(int argc, char** argv) {
  using namespace kforge::cli;
  CLI::App app{
      "kforge: evolves, checks and benchmarks compute kernels, and keeps the fittest in a SQLite "
      "kernel library."};
  app.set_version_flag("--version", std::string("kforge ") + KFORGE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Context context;
  app.add_option("--tasks-dir", context.tasks_dir,
                 "Root of the task suites (default: $KFORGE_TASKS_DIR, ./tasks, or the source tree's)");
  add_tasks_command(app, context);
  add_eval_command(app, context);
  add_db_command(app, context);
  add_backend_commands(app, context);
  add_search_command(app, context);
  add_infer_command(app, context);
  add_web_commands(app, context);
  add_workers_command(app, context);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage mistake is bad input like any other.
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  try {
    return context.run ? context.run() : kExitOk;
  } catch (const std::exception& e) {  // a bug: still one line and a non-zero exit, no abort
    fmt::print(stderr, "kforge: internal error: {}\n", e.what());
    return kExitBadInput;
  }
}
