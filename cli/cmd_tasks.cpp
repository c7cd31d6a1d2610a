// kforge tasks list: what the task suites hold.
#include <filesystem>

#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"

namespace kforge::cli {
namespace {

const char* dtype_name(DType d) {
  return d == DType::f32 ? "f32" : "i32";
}
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
      for (const auto& t : *tasks)
        fmt::print("{:<18} {:<14} {:>5}  {}\n", t.id(), t.category, t.seed_paths.size(), signature(t));
      return kExitOk;
    };
  });
}

}  // namespace kforge::cli
