// Whether a call of the kernel under test did what the reference did, and nothing else. compare
// checks its outputs element by element against the reference's, within the task's tolerances
// (exactly for integers, NaN only where the reference has NaN); misbehaviour finds what else it
// did: writing outside a tensor (its guard zones changed) or changing an input (its hash, taken by
// input_hashes before the call, changed). check_baseline holds the task's baseline to the same
// standard on the timed calls.
#include <algorithm>
#include <cmath>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

constexpr int kMaxMismatches = 5;

// Element i of an output (f32, f16 or i32; quantized tensors are never outputs) as a double.
double element(const Buffer& b, DType dtype, size_t i) {
  if (dtype == DType::i32) return reinterpret_cast<const std::int32_t*>(b.data())[i];
  if (dtype == DType::f16) return f16_to_f32(reinterpret_cast<const std::uint16_t*>(b.data())[i]);
  return reinterpret_cast<const float*>(b.data())[i];
}

}  // namespace

void compare(const Task& task, const CallArgs& got, const CallArgs& want, ShapeResult& out) {
  out.correct = true;
  for (size_t a = 0; a < task.args.size(); ++a) {
    const TaskArg& arg = task.args[a];
    if (arg.role != ArgRole::out && arg.role != ArgRole::inout) continue;
    const size_t n = buffer_elements(want.buffers[a], arg.dtype);
    for (size_t i = 0; i < n; ++i) {
      double g = element(got.buffers[a], arg.dtype, i), w = element(want.buffers[a], arg.dtype, i);
      bool ok;
      if (std::isnan(w) || std::isnan(g)) {
        ok = std::isnan(w) && std::isnan(g);
      } else if (std::isinf(w) || std::isinf(g)) {
        ok = g == w;
      } else {
        double abs_error = std::fabs(g - w);
        out.max_abs_error = std::max(out.max_abs_error, abs_error);
        if (w != 0) out.max_rel_error = std::max(out.max_rel_error, abs_error / std::fabs(w));
        ok = arg.dtype == DType::i32 ? g == w : abs_error <= task.atol + task.rtol * std::fabs(w);
      }
      if (!ok) {
        ++out.wrong_elements;
        if (out.mismatches.size() < kMaxMismatches)
          out.mismatches.push_back({arg.name, static_cast<std::int64_t>(i), g, w});
        out.correct = false;
      }
    }
  }
}

std::vector<std::string> input_hashes(const Task& task, const CallArgs& args) {
  std::vector<std::string> hashes(task.args.size());
  for (size_t i = 0; i < task.args.size(); ++i)
    if (task.args[i].role == ArgRole::in)
      hashes[i] = content_hash({reinterpret_cast<const char*>(args.buffers[i].data()), args.buffers[i].bytes});
  return hashes;
}

std::vector<const Buffer*> views(const CallArgs& args) {
  std::vector<const Buffer*> out;
  for (const auto& b : args.buffers) out.push_back(&b);
  return out;
}

// What a candidate call did wrong besides its values: writing outside a tensor, or changing an
// input. `buffers` are the call's arguments; empty when it kept to its outputs.
std::string misbehaviour(const Task& task, const std::vector<const Buffer*>& buffers,
                         const std::vector<std::string>& input_hashes) {
  for (size_t i = 0; i < task.args.size(); ++i) {
    if (!task.args[i].is_tensor()) continue;
    if (!buffers[i]->guards_intact())
      return fmt::format("the kernel wrote outside '{}' (the bytes just before or after it changed)", task.args[i].name);
    if (task.args[i].role == ArgRole::in &&
        content_hash({reinterpret_cast<const char*>(buffers[i]->data()), buffers[i]->bytes}) != input_hashes[i])
      return fmt::format("the kernel modified its input '{}'", task.args[i].name);
  }
  return "";
}

std::optional<TimedFailure> check_baseline(const Task& task, const CallArgs& got, const CallArgs& want) {
  ShapeResult check;
  compare(task, got, want, check);
  if (check.correct) return std::nullopt;
  const Mismatch& m = check.mismatches.front();
  ShapeResult not_the_candidates;
  not_the_candidates.correct = true;
  return TimedFailure{fmt::format("the task's baseline computed something else ({}[{}] = {}, want {}, {} of its "
                                  "outputs wrong): speedups against it would mean nothing; fix the task",
                                  m.tensor, m.index, format_value(m.got), format_value(m.want), check.wrong_elements),
                      not_the_candidates};
}

}  // namespace kforge
