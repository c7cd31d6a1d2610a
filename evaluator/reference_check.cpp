// Task validation (Evaluator::check_reference): a task's reference must compute from its inputs.
// reference_problem runs it on the check shapes and says why it does not (the same outputs for two
// draws of its inputs, or for one input drawn afresh); validate_reference is the worker's side of
// a "validate" request, running reference_problem in a sandboxed child.
#include <unistd.h>

#include <algorithm>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// The bytes of every out and inout tensor after `reference` ran on a copy of `inputs`.
std::string reference_outputs(const Task& task, CallFn reference, const CallArgs& inputs) {
  CallArgs args = inputs.clone();
  reference(args.pointers().data());
  std::string out;
  for (size_t i = 0; i < task.args.size(); ++i)
    if (is_output(task.args[i])) out.append(reinterpret_cast<const char*>(args.buffers[i].data()), args.buffers[i].bytes);
  return out;
}

}  // namespace

// Runs in a child of the worker. The check shapes, smallest first: the reference's outputs must
// differ between two seeds on at least one of them, and drawing any one input tensor afresh must
// change them on at least one. (A degenerate shape can make an honest output constant, such as
// the argmax of one logit, so a later shape may supply the difference.) Empty: no problem found.
std::string reference_problem(const Task& task, CallFn reference) {
  std::vector<Bindings> shapes = task.check_shapes;
  auto size = [&](const Bindings& dims) {
    double total = 0;
    for (const auto& arg : task.args)
      if (arg.is_tensor()) total += static_cast<double>(element_count(arg, dims));
    return total;
  };
  std::stable_sort(shapes.begin(), shapes.end(), [&](const Bindings& a, const Bindings& b) { return size(a) < size(b); });
  bool varies = false;
  for (const auto& dims : shapes) {
    std::mt19937_64 first(0x5EED0001), second(0x5EED0002);
    if (reference_outputs(task, reference, make_inputs(task, dims, first)) !=
        reference_outputs(task, reference, make_inputs(task, dims, second))) {
      varies = true;
      break;
    }
  }
  if (!varies)
    return fmt::format("the reference gives the same outputs for two different draws of its inputs on every check shape "
                       "(smallest {}): it does not compute from its inputs (a constant, or outputs it never writes?)",
                       shape_label(shapes.front()));
  for (size_t i = 0; i < task.args.size(); ++i) {
    const TaskArg& arg = task.args[i];
    if (arg.role != ArgRole::in && arg.role != ArgRole::inout) continue;
    bool matters = false;
    for (const auto& dims : shapes) {
      std::mt19937_64 rng(0x5EED0001), other(0x5EED0003);
      const CallArgs inputs = make_inputs(task, dims, rng);
      CallArgs perturbed = inputs.clone();
      fill(perturbed.buffers[i], arg, other, dims);
      if (reference_outputs(task, reference, inputs) != reference_outputs(task, reference, perturbed)) {
        matters = true;
        break;
      }
    }
    if (!matters)
      return fmt::format("the reference gives the same outputs when its input '{}' is drawn afresh, on every check "
                         "shape: it ignores '{}'",
                         arg.name, arg.name);
  }
  return "";
}

// {"type": "validate", "task_dir", "reference"}: runs reference_problem in a sandboxed child;
// answers {"problem": "..."}, empty when the reference passed.
nlohmann::json validate_reference(const nlohmann::json& request) {
  try {
    auto task = load_task(request.at("task_dir").get<std::string>());
    if (!task) return {{"error", task.error().message}};
    const std::string reference_binary = request.at("reference");
    EvalOptions options;
    options.timeout_s = 60;
    auto child = run_in_child(
        [&](int output_fd) {
          dup2(STDERR_FILENO, STDOUT_FILENO);
          std::string problem;
          if (Status sandbox = enter_sandbox(options); !sandbox) {
            problem = "internal: " + sandbox.error().message;
          } else if (auto library = SharedLibrary::open(reference_binary); !library) {
            problem = "internal: " + library.error().message;
          } else if (auto fn = library->symbol("kforge_call"); !fn) {
            problem = "internal: " + fn.error().message;
          } else {
            problem = reference_problem(*task, reinterpret_cast<CallFn>(*fn));
            problem = problem.empty() ? "ok" : problem;
          }
          for (size_t done = 0; done < problem.size();) {
            ssize_t n = write(output_fd, problem.data() + done, problem.size() - done);
            if (n <= 0) _exit(3);
            done += static_cast<size_t>(n);
          }
          _exit(0);
        },
        options.timeout_s);
    if (!child) return {{"error", child.error().message}};
    if (child->timed_out) return {{"problem", "the reference ran past 60 s on the check shapes"}};
    if (child->signal != 0) return {{"problem", "the reference crashed on a check shape: " + signal_name(child->signal)}};
    if (child->exit_code != 0 || child->output.empty())
      return {{"problem", fmt::format("the reference ended the process (exit code {})", child->exit_code)}};
    if (child->output.rfind("internal: ", 0) == 0) return {{"error", child->output.substr(10)}};
    return {{"problem", child->output == "ok" ? "" : child->output}};
  } catch (const nlohmann::json::exception& e) {
    return {{"error", fmt::format("malformed validate request: {}", e.what())}};
  }
}

}  // namespace kforge
