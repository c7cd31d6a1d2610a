// The prompts of the LLM operators: the templates in prompts/ filled with the task, the target,
// the parent and what the population has learnt so far.
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "agent/search.hpp"

namespace kforge {
namespace {

constexpr std::size_t kFeedbackChars = 2000;  // of a failure, per program shown

std::string clip(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : text.substr(0, n) + "\n[... cut]";
}

// The entry's declaration with the task's argument names: the generated declaration's types
// zipped with the names.
std::string signature(const Task& task, const std::string& backend, const std::string& entry) {
  const auto conventions = kernel_conventions(backend);
  const bool host = !conventions || conventions->runs_on_host();
  const std::string generated = host ? trampoline_source(task, entry) : gpu_entry_declaration(task, entry);
  const std::string head = host ? "extern \"C\" void " : "extern \"C\" __global__ void ";
  const std::size_t open = generated.find(head + entry + "(");
  if (open == std::string::npos) return generated;
  const std::size_t start = open + head.size() + entry.size() + 1, end = generated.find(')', start);
  std::vector<std::string> parts;
  std::istringstream types(generated.substr(start, end - start));
  std::size_t i = 0;
  for (std::string type; std::getline(types, type, ',');) {
    while (!type.empty() && type.front() == ' ') type.erase(0, 1);
    parts.push_back(type + " " + (i < task.args.size() ? task.args[i].name : ""));
    ++i;
  }
  return fmt::format("{}{}({});", head, entry, fmt::join(parts, ", "));
}

std::string role_name(ArgRole role) {
  switch (role) {
    case ArgRole::in: return "in";
    case ArgRole::out: return "out";
    case ArgRole::inout: return "inout";
    case ArgRole::size: return "size";
    case ArgRole::scalar: return "scalar";
  }
  return "?";
}

std::string arguments(const Task& task) {
  std::string out;
  for (const auto& arg : task.args) {
    std::string line = fmt::format("- `{}`: {} {}", arg.name, role_name(arg.role), dtype_name(arg.dtype));
    if (arg.is_tensor()) {
      std::vector<std::string> dims;
      for (const auto& e : arg.shape) dims.push_back(e.text());
      line += fmt::format(" [{}]", fmt::join(dims, ", "));
    }
    if (arg.role == ArgRole::scalar) line += fmt::format(" = {}", arg.value);
    out += line + "\n";
  }
  return out;
}

std::string shapes(const std::vector<Bindings>& list) {
  std::string out;
  for (const auto& dims : list) out += "- " + shape_label(dims) + "\n";
  return out.empty() ? "(none)\n" : out;
}

std::string roofline(const Task& task) {
  std::string out;
  for (const auto& dims : task.bench_shapes) {
    std::vector<std::string> parts;
    if (task.bytes)
      if (auto b = task.bytes->eval(dims)) parts.push_back(fmt::format("{:.3g} MB moved", *b / 1e6));
    if (task.flops)
      if (auto f = task.flops->eval(dims)) parts.push_back(fmt::format("{:.3g} MFLOP", *f / 1e6));
    out += fmt::format("- {}: {}\n", shape_label(dims), parts.empty() ? "unknown" : fmt::format("{}", fmt::join(parts, ", ")));
  }
  if (task.bytes) out += fmt::format("(bytes = {}", task.bytes->text());
  if (task.flops) out += fmt::format("{}flops = {}", task.bytes ? "; " : "(", task.flops->text());
  if (task.bytes || task.flops) out += ")\n";
  return out;
}

std::string metrics(const Program& p) {
  if (!p.correct()) return fmt::format("{} ({}): {}", p.origin, p.status, clip(p.feedback, 300));
  // A GPU kernel's register count and spills, which bound its occupancy, as ptxas reported them.
  const std::string resources =
      p.usage.registers < 0 ? ""
                            : fmt::format(", {} registers a thread, {} bytes spilled, {} bytes static shared memory",
                                          p.usage.registers, p.usage.spill_bytes, p.usage.shared_bytes);
  return fmt::format("{} ({}): correct, {:.3f}x the baseline, {:.1f} us geometric-mean median, {:.0f}% of roofline{}{}",
                     p.origin, p.operator_name, p.fitness, p.median_us, p.roofline_pct, resources,
                     p.verified ? ", re-verified" : "");
}

// What was tried lately: the parent's last children, and the latest failures on its island
// (so that a mistake is not made twice), each with its outcome.
std::string history(const Population& population, const Program& parent) {
  std::vector<int> shown = population.children_of(parent.key);
  if (shown.size() > 3) shown.erase(shown.begin(), shown.end() - 3);
  const auto& members = population.members(parent.island);
  int failures = 0;
  for (auto it = members.rbegin(); it != members.rend() && failures < 2; ++it)
    if (!population.at(*it).correct() && std::find(shown.begin(), shown.end(), *it) == shown.end())
      shown.push_back(*it), ++failures;
  std::string out;
  for (int i : shown) {
    const Program& c = population.at(i);
    const bool child = c.parent_key == parent.key;
    out += fmt::format("- {} ({}{}): {}\n", c.origin, c.candidate.about.empty() ? c.operator_name : c.candidate.about,
                       child ? ", from this parent" : "",
                       c.correct() ? fmt::format("correct, {:.3f}x (this parent {:.3f}x)", c.fitness, parent.fitness)
                                   : fmt::format("{}: {}", c.status, clip(c.feedback, 600)));
  }
  return out.empty() ? "(nothing yet)\n" : out;
}

std::string programs_shown(const Population& population, int parent) {
  std::string out;
  auto show = [&](int index, const char* why) {
    const Program& p = population.at(index);
    out += fmt::format("### {} ({})\n\n{}\n\n```\n{}\n```\n\n", p.origin, why, metrics(p), p.candidate.source);
  };
  for (int i : population.top(2))
    if (i != parent) show(i, "among the best");
  for (int i : population.diverse(2, parent)) show(i, "a different approach");
  return out.empty() ? "(none besides the parent)\n" : out;
}

Result<std::string> read_prompt_file(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::string();
  return read_file(path);
}

}  // namespace

std::string category_exemplar(const Task& task, const std::vector<Task>& all, const std::string& backend,
                              const std::string& prompts_dir) {
  // The GPU exemplars are CUDA, which HIP compiles too.
  const auto conventions = kernel_conventions(backend);
  const bool host = !conventions || conventions->runs_on_host();
  const auto file = std::filesystem::path(prompts_dir) / "exemplars" / (task.category + (host ? ".cpp" : ".cu"));
  if (auto source = read_file(file.string())) return *source;
  for (const Task& other : all) {
    if (other.id() == task.id() || other.category != task.category) continue;
    for (const auto& path : other.seed_paths) {
      const std::string name = std::filesystem::path(path).filename().string();
      if (is_seed_for(backend, name) && name.find("naive") == std::string::npos)
        if (auto source = read_file(path)) return *source;
    }
  }
  return "";
}

Result<std::string> render_task_prompt(const Task& task, const PromptContext& context, const std::string& entry) {
  std::vector<std::string> constraints;
  for (const auto& c : task.constraints) constraints.push_back(c.text());
  return render_prompt(
      context.prompts_dir, "task.txt",
      {{"task_id", task.id()},
       {"category", task.category},
       {"description", task.description},
       {"signature", signature(task, context.backend, entry)},
       {"arguments", arguments(task)},
       {"bench_shapes", shapes(task.bench_shapes)},
       {"check_shapes", shapes(task.check_shapes)},
       {"constraints", constraints.empty() ? "(none)" : fmt::format("{}", fmt::join(constraints, "; "))},
       {"tolerance", fmt::format("atol {}, rtol {}", task.atol, task.rtol)},
       {"roofline", roofline(task)},
       {"exemplar", context.exemplar.empty() ? "(none)" : "```\n" + context.exemplar + "\n```"}});
}

Result<std::vector<LlmMessage>> build_messages(const std::string& kind, const Task& task, const PromptContext& context,
                                               const Population& population, int parent_index, int other_index) {
  const Program& parent = population.at(parent_index);
  auto contract = read_file(context.prompts_dir + "/contract_" + context.backend + ".txt");
  if (!contract) return contract.error();
  auto hw = read_prompt_file(context.prompts_dir + "/hw/" + context.arch + ".md");
  if (!hw) return hw.error();
  auto system = render_prompt(context.prompts_dir, "system.txt",
                              {{"backend", context.backend},
                               {"device", context.device},
                               {"arch", context.arch},
                               {"contract", *contract},
                               {"hw_notes", *hw}});
  if (!system) return system.error();
  auto task_text = render_task_prompt(task, context, parent.candidate.entry);
  if (!task_text) return task_text.error();

  std::map<std::string, std::string> values{
      {"task", *task_text},
      {"parent_metrics", metrics(parent)},
      {"parent_source", parent.candidate.source},
      {"history", history(population, parent)},
      {"top_programs", programs_shown(population, parent_index)},
      {"retrieved", context.retrieved.empty() ? "(none yet)" : context.retrieved},
  };
  if (kind == "crossover") {
    if (other_index < 0) return make_error(ErrorKind::invalid_input, "a crossover needs two parents");
    const Program& other = population.at(other_index);
    values["other_metrics"] = metrics(other);
    values["other_source"] = other.candidate.source;
  }
  if (kind == "fix") {
    values["failure_kind"] = parent.status;
    values["failure"] = clip(parent.feedback, kFeedbackChars);
  }
  auto user = render_prompt(context.prompts_dir, kind + ".txt", values);
  if (!user) return user.error();
  return std::vector<LlmMessage>{{"system", *system}, {"user", *user}};
}

}  // namespace kforge
