// The evaluation protocol, run_protocol: correctness first, on every check and bench shape and on
// one held-out shape, kTrials times each on other inputs, the candidate always before the
// reference; then, once every shape passed, the timing of each bench shape on the target. It runs
// in the process that calls the candidate: the sandboxed child for native code (host_target.cpp),
// the worker itself for a GPU (device_target.cpp). consistent checks that a result is one
// run_protocol could have produced.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

constexpr int kTrials = 3;

// How much work one call on `dims` is, to scale a time measured on one shape to another: the
// task's FLOPs, else its tensors' elements.
double work_units(const Task& task, const Bindings& dims) {
  if (task.flops)
    if (auto f = task.flops->eval(dims); f && *f > 0) return static_cast<double>(*f);
  double elements = 0;
  for (const auto& arg : task.args)
    if (arg.is_tensor()) elements += static_cast<double>(element_count(arg, dims));
  return std::max(1.0, elements);
}

std::int64_t output_elements(const Task& task, const Bindings& dims) {
  std::int64_t total = 0;
  for (const auto& arg : task.args)
    if (arg.role == ArgRole::out || arg.role == ArgRole::inout) total += element_count(arg, dims);
  return total;
}

// The candidate's call failed outright (a launch error, an illegal address): the status says how.
EvalResult failed_call(EvalResult result, const Target& target, const Error& error, ShapeResult shape) {
  result.status = target.dead() ? EvalStatus::crash : EvalStatus::runtime_error;
  result.message = fmt::format("{} at {}", error.message, shape_label(shape.dims));
  shape.correct = false;
  result.shapes.push_back(std::move(shape));
  return result;
}

// Timing shape `s` failed: the device died (a crash), or `failure` says what went wrong with the
// timed calls.
EvalResult failed_timing(EvalResult result, size_t s, const Target& target, const std::optional<TimedFailure>& failure) {
  ShapeResult& shape = result.shapes[s];
  if (target.dead()) {
    result.status = EvalStatus::crash;
    result.message = fmt::format("{} at {}", failure ? failure->first : "the device died", shape_label(shape.dims));
    shape.correct = false;
    return result;
  }
  const auto& [why, check] = *failure;
  // A failure that found every output right is the device's or the harness's, not a mismatch.
  result.status = check.correct ? EvalStatus::runtime_error : EvalStatus::incorrect;
  if (!why.empty()) {
    result.message = fmt::format("while timed, {} at {}", why, shape_label(shape.dims));
  } else {
    const Mismatch& m = check.mismatches.front();
    result.message = fmt::format("the timed calls computed something else: {}[{}] = {} (want {}) at {}",
                                 m.tensor, m.index, format_value(m.got), format_value(m.want),
                                 shape_label(shape.dims));
  }
  shape.correct = false;
  shape.wrong_elements = check.wrong_elements;
  shape.mismatches = check.mismatches;
  return result;
}

// A timed shape's results from its samples: the candidate's statistics, its speedup over the
// baseline when one was timed, and the rates the task's bytes and FLOPs give.
void record_timing(const Task& task, ShapeResult& shape, const std::vector<double>& candidate_us,
                   const std::vector<double>& baseline_us) {
  shape.timing = summarize(candidate_us);
  if (!baseline_us.empty()) {
    shape.baseline_timing = summarize(baseline_us);
    shape.speedup = shape.baseline_timing->median_us / shape.timing->median_us;
  }
  const double seconds = shape.timing->median_us * 1e-6;
  if (seconds > 0) {
    shape.gbps = bytes_of(task, shape.dims) / seconds / 1e9;
    shape.gflops = flops_of(task, shape.dims) / seconds / 1e9;
  }
}

}  // namespace

EvalResult run_protocol(const Task& task, CallFn reference, Target& target, const EvalOptions& options,
                        std::uint64_t seed) {
  EvalResult result;
  result.seed = seed;
  std::vector<std::pair<Bindings, bool>> shapes;
  for (const auto& d : task.check_shapes) shapes.emplace_back(d, false);
  for (const auto& d : task.bench_shapes) shapes.emplace_back(d, true);
  std::mt19937_64 shape_picker(seed ^ 0x5DEECE66Dull);  // (consistent() draws the same one)
  if (auto extra = held_out_shape(task, shape_picker)) shapes.emplace_back(*extra, false);

  // Correctness first, on every shape, kTrials times each with other inputs; timing only once
  // all of them pass. Every (shape, trial) has its own random stream, so the timing phase can
  // regenerate trial 0's inputs exactly. The candidate runs before the reference, so it cannot
  // find the answer in memory.
  auto stream = [seed](size_t s, int trial) {
    return std::mt19937_64(seed ^ (0x9E3779B97F4A7C15ull * (s + 1)) ^ (0xD1B54A32D192ED03ull * trial));
  };
  // The watchdog's limit for one call: 1000x the reference's time for that much work, at least
  // 2 s (the scalar reference is no speed record), at most the whole timeout. The pace starts from
  // one reference call on throwaway inputs (the candidate never sees its answer).
  double reference_pace = 0;  // seconds per unit of work
  {
    std::mt19937_64 throwaway(seed ^ 0xC0FFEE123ull);
    CallArgs probe = make_inputs(task, shapes.front().first, throwaway);
    const auto t0 = Clock::now();
    reference(probe.pointers().data());
    reference_pace = std::chrono::duration<double>(Clock::now() - t0).count() / work_units(task, shapes.front().first);
  }
  auto limit_for = [&](const Bindings& dims) {
    return std::min(options.timeout_s, std::max(2.0, 1000 * reference_pace * work_units(task, dims)));
  };
  for (size_t s = 0; s < shapes.size(); ++s) {
    watchdog.limit_s = limit_for(shapes[s].first);
    ShapeResult shape;
    shape.dims = shapes[s].first;
    shape.bench = shapes[s].second;
    shape.held_out = s >= task.check_shapes.size() + task.bench_shapes.size();
    shape.correct = true;
    for (int trial = 0; trial < kTrials && shape.correct; ++trial) {
      auto rng = stream(s, trial);
      CallArgs want = make_inputs(task, shape.dims, rng, trial);
      const auto hashes = input_hashes(task, want);
      CallArgs got = candidate_args(task, want);
      if (Status call = target.run(task, got); !call) return failed_call(std::move(result), target, call.error(), shape);
      if (std::string why = misbehaviour(task, views(got), hashes); !why.empty()) {
        result.status = EvalStatus::incorrect;
        result.message = fmt::format("{} at {}", why, shape_label(shape.dims));
        shape.correct = false;
        result.shapes.push_back(std::move(shape));
        return result;
      }
      if (trial == 0) {  // determinism: a second run on the same inputs agrees within tolerance
        CallArgs again = candidate_args(task, want);
        if (Status call = target.run(task, again); !call)
          return failed_call(std::move(result), target, call.error(), shape);
        ShapeResult rerun;  // (an OpenMP reduction may sum in another order: bitwise is too strict)
        compare(task, again, got, rerun);
        if (!rerun.correct) {
          const Mismatch& m = rerun.mismatches.front();
          result.status = EvalStatus::incorrect;
          result.message = fmt::format("two runs on the same inputs disagree at {}[{}] ({} then {}) at {}: the "
                                       "kernel is not deterministic (a race?)",
                                       m.tensor, m.index, format_value(m.want), format_value(m.got),
                                       shape_label(shape.dims));
          shape.correct = false;
          result.shapes.push_back(std::move(shape));
          return result;
        }
      }
      const auto reference_start = Clock::now();
      reference(want.pointers().data());
      reference_pace = std::max(reference_pace, std::chrono::duration<double>(Clock::now() - reference_start).count() /
                                                    work_units(task, shape.dims));
      compare(task, got, want, shape);
    }
    result.shapes.push_back(std::move(shape));
  }
  for (const auto& shape : result.shapes) {
    if (shape.correct) continue;
    const Mismatch& m = shape.mismatches.front();
    result.status = EvalStatus::incorrect;
    result.message = fmt::format("{}[{}] = {} (want {}) at {}{}; {} of {} output elements wrong", m.tensor, m.index,
                                 format_value(m.got), format_value(m.want), shape_label(shape.dims),
                                 shape.held_out ? " (a held-out shape)" : "", shape.wrong_elements,
                                 output_elements(task, shape.dims));
    return result;
  }

  if (options.time_bench_shapes) {
    std::mt19937_64 rng(seed ^ 0x2545F4914F6CDD1Dull);  // which timed calls are checked
    for (size_t s = 0; s < shapes.size(); ++s) {
      ShapeResult& shape = result.shapes[s];
      if (!shape.bench) continue;
      std::vector<CallArgs> pool = timing_pool(task, shape.dims, stream(s, 0), rng);
      std::vector<double> candidate_us, baseline_us;
      watchdog.limit_s = limit_for(shape.dims);
      auto failure = target.time(task, reference, pool, options, rng, candidate_us, baseline_us);
      if (target.dead() || failure) return failed_timing(std::move(result), s, target, failure);
      record_timing(task, shape, candidate_us, baseline_us);
    }
  }
  double log_sum = 0;
  int timed_shapes = 0;
  for (const auto& shape : result.shapes)
    if (shape.speedup > 0) log_sum += std::log(shape.speedup), ++timed_shapes;
  if (timed_shapes) result.speedup = std::exp(log_sum / timed_shapes);
  result.status = EvalStatus::ok;
  return result;
}

// A result the harness could have produced: every shape of the task, in order, and for ok every
// shape correct and every bench shape timed. Rejects the crudest forgeries by the candidate,
// which runs in the same process; isolating it from the result channel is the worker's job.
bool consistent(const Task& task, const EvalResult& r, const EvalOptions& options, std::uint64_t seed) {
  if (r.seed != seed) return false;
  // The held-out shape is the one this seed draws, and an ok result must have checked it.
  std::mt19937_64 shape_picker(seed ^ 0x5DEECE66Dull);
  const auto held_out = held_out_shape(task, shape_picker);
  if (r.status == EvalStatus::ok && held_out && (r.shapes.empty() || r.shapes.back().dims != *held_out)) return false;
  for (const auto& s : r.shapes)
    for (const auto* t : {&s.timing, &s.baseline_timing})
      if (*t && ((*t)->n > options.max_repeats || (*t)->min_us > (*t)->median_us ||
                 ((*t)->n > 0 && s.timing.has_value() && t == &s.timing &&
                  !((*t)->p20_us <= (*t)->median_us && (*t)->median_us <= (*t)->p80_us))))
        return false;
  std::vector<std::pair<Bindings, bool>> expected;
  for (const auto& d : task.check_shapes) expected.emplace_back(d, false);
  for (const auto& d : task.bench_shapes) expected.emplace_back(d, true);
  if (r.status == EvalStatus::runtime_error && r.shapes.empty()) return true;  // could not load a library
  // Shapes in the task's order; a failure may stop early; one held-out shape may follow.
  size_t listed = r.shapes.size();
  if (listed > 0 && r.shapes.back().held_out) {
    --listed;
    const Bindings& dims = r.shapes.back().dims;
    for (const auto& c : task.constraints)
      if (!c.eval(dims).ok() || *c.eval(dims) == 0) return false;
    if (block_problem(task, dims)) return false;
  }
  if (listed > expected.size() || (r.status == EvalStatus::ok && listed != expected.size())) return false;
  for (size_t i = 0; i < listed; ++i) {
    const ShapeResult& s = r.shapes[i];
    if (s.dims != expected[i].first || s.bench != expected[i].second || s.held_out) return false;
    if (r.status == EvalStatus::ok &&
        (!s.correct || (s.bench && options.time_bench_shapes && (!s.timing || s.timing->n < options.min_repeats))))
      return false;
  }
  if (r.status == EvalStatus::ok && listed < r.shapes.size() && !r.shapes.back().correct) return false;
  return r.status == EvalStatus::ok || r.status == EvalStatus::incorrect || r.status == EvalStatus::runtime_error;
}

}  // namespace kforge
