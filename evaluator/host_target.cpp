// The host target: native (cpu) kernels, called through their trampolines in a sandboxed child
// of the worker. run_sandboxed forks that child, which enters the sandbox before it loads any
// kernel and runs the protocol on a HostTarget; the worker then turns how the child ended (its
// result, a timeout, a signal, an exit code) into a status, and checks that the result is one the
// harness could have produced, since candidate code ran in the process that sent it. The timing
// loop, time_interleaved, calls the candidate and the baseline in turn, each through a Runner with
// outputs of its own, the caches flushed before each call.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// Twice the last-level cache, capped: VMs report the whole socket's L3 (300 MiB here), and
// writing 600 MiB before each call would cost ~60 ms of flushing per sample.
size_t flush_bytes() {
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  long llc = l3 > 0 ? l3 : l2 > 0 ? l2 : 32l << 20;
  return std::min<size_t>(2 * static_cast<size_t>(llc), 64u << 20);
}

// A kernel, timed or not, with buffers of its own for its outputs; the inputs of each call come
// from the pool (shared, read-only).
struct Runner {
  CallFn fn;
  CallArgs own;  // out and inout tensors; the other slots stay empty
  std::vector<double> samples_us;

  Runner(const Task& task, CallFn f, const CallArgs& shape) : fn(f) {
    for (size_t i = 0; i < task.args.size(); ++i)
      own.buffers.push_back(is_output(task.args[i]) ? Buffer::make(shape.buffers[i].bytes) : Buffer{});
  }
  std::vector<const Buffer*> arguments(const Task& task, const CallArgs& inputs) const {
    std::vector<const Buffer*> out;
    for (size_t i = 0; i < task.args.size(); ++i)
      out.push_back(is_output(task.args[i]) ? &own.buffers[i] : &inputs.buffers[i]);
    return out;
  }
  // Poisons the outputs (restores inout tensors from `inputs`), then calls; the time of the call
  // alone is recorded when `record`. `before` runs last before the clock starts (the cache flush).
  void call(const Task& task, const CallArgs& inputs, bool record, const std::function<void()>& before = {}) {
    for (size_t i = 0; i < task.args.size(); ++i) {
      Buffer& b = own.buffers[i];
      if (task.args[i].role == ArgRole::out) std::memset(b.data(), 0xFF, b.bytes);
      if (task.args[i].role == ArgRole::inout) std::memcpy(b.data(), inputs.buffers[i].data(), b.bytes);
    }
    std::vector<void*> pointers;
    for (const Buffer* b : arguments(task, inputs)) pointers.push_back(b->data());
    if (before) before();
    watchdog.arm();
    const auto t0 = Clock::now();
    fn(pointers.data());
    const auto t1 = Clock::now();
    watchdog.disarm();
    if (record) samples_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
};

// Times the candidate (timed[0]) and, when given, the baseline (timed[1]) interleaved, call for
// call, so both see the same machine. Call i reads pool input set i mod |pool|, after 16 elements
// of each input were drawn afresh: no call finds the previous call's data in the cache, and none
// sees inputs seen before, so a stored answer is never right. Before every call, outside the timed
// window, the outputs are poisoned (inout tensors restored) and the caches flushed. A random eighth
// of the candidate's calls, and one more call after the last, are checked against the reference
// on the same inputs, again outside the window: every timed call must really compute.
std::optional<TimedFailure> time_interleaved(const Task& task, std::vector<Runner>& timed, Runner& reference,
                                             std::vector<CallArgs>& pool, const EvalOptions& options,
                                             std::vector<std::byte>& flush_buffer, std::mt19937_64& rng) {
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  unsigned char flush_value = 0;
  auto flush = [&] {
    if (!flush_buffer.empty()) std::memset(flush_buffer.data(), ++flush_value, flush_buffer.size());
  };
  // One call of the candidate on `inputs`, checked: the reference's answer, and nothing else touched.
  auto checked_call = [&](const CallArgs& inputs, bool record) -> std::optional<TimedFailure> {
    const auto hashes = input_hashes(task, inputs);
    timed[0].call(task, inputs, record, flush);
    std::string why = misbehaviour(task, timed[0].arguments(task, inputs), hashes);
    reference.call(task, inputs, false);
    ShapeResult check;
    compare(task, timed[0].own, reference.own, check);
    if (why.empty() && check.correct) return std::nullopt;
    return TimedFailure{why, check};
  };

  size_t next = 0;
  const auto warmup_start = Clock::now();
  for (int calls = 0; calls < 3 || seconds_since(warmup_start) < options.warmup_s; ++calls, ++next)
    for (auto& t : timed) t.call(task, pool[next % pool.size()], false);

  const auto start = Clock::now();
  auto settled = [&](const Runner& t) {
    const TimingStats s = summarize(t.samples_us);
    return s.std_us / std::sqrt(s.n) < options.target_relative_se * s.median_us;
  };
  for (;; ++next) {
    CallArgs& inputs = pool[next % pool.size()];
    redraw_some(task, inputs, rng);
    if (rng() % 8 == 0) {
      if (auto failure = checked_call(inputs, true)) return failure;
    } else {
      timed[0].call(task, inputs, true, flush);
    }
    for (size_t t = 1; t < timed.size(); ++t) timed[t].call(task, inputs, true, flush);
    const int n = static_cast<int>(timed[0].samples_us.size());
    if (n >= options.max_repeats) break;
    if (n < options.min_repeats) continue;
    if (seconds_since(start) >= options.max_time_per_shape_s) break;
    if (std::all_of(timed.begin(), timed.end(), settled)) break;
  }
  CallArgs& inputs = pool[next % pool.size()];
  redraw_some(task, inputs, rng);
  if (auto failure = checked_call(inputs, false)) return failure;
  if (timed.size() < 2) return std::nullopt;
  timed[1].call(task, inputs, false);  // the baseline, on the inputs the reference just answered
  return check_baseline(task, timed[1].own, reference.own);
}

// The cpu target: kernels called in this process (the evaluation child) through their trampolines.
class HostTarget final : public Target {
 public:
  HostTarget(CallFn candidate, CallFn baseline, bool flush) : candidate_(candidate), baseline_(baseline), flush_(flush) {}
  Status run(const Task&, CallArgs& args) override {
    watchdog.arm();
    candidate_(args.pointers().data());
    watchdog.disarm();
    return {};
  }
  bool has_baseline() const override { return baseline_ != nullptr; }
  std::optional<TimedFailure> time(const Task& task, CallFn reference, std::vector<CallArgs>& pool,
                                   const EvalOptions& options, std::mt19937_64& rng, std::vector<double>& candidate_us,
                                   std::vector<double>& baseline_us) override {
    if (flush_ && flush_buffer_.empty()) flush_buffer_.resize(flush_bytes());  // (64 MiB: only when timing)
    std::vector<Runner> timed;
    timed.emplace_back(task, candidate_, pool[0]);
    if (baseline_) timed.emplace_back(task, baseline_, pool[0]);
    Runner oracle(task, reference, pool[0]);
    auto failure = time_interleaved(task, timed, oracle, pool, options, flush_buffer_, rng);
    candidate_us = std::move(timed[0].samples_us);
    if (baseline_) baseline_us = std::move(timed[1].samples_us);
    return failure;
  }

 private:
  CallFn candidate_, baseline_;
  bool flush_;
  std::vector<std::byte> flush_buffer_;
};

}  // namespace

// Runs the protocol on compiled binaries in a sandboxed child of the worker, and turns how the
// child ended into a status.
EvalResult run_sandboxed(const Task& task, const std::string& reference_binary, const std::string& baseline_binary,
                         const std::string& candidate_binary, const EvalOptions& options, std::uint64_t seed) {
  auto child = run_in_child(
      [&](int output_fd) {
        dup2(STDERR_FILENO, STDOUT_FILENO);  // the candidate's prints must not reach the worker's channel
        EvalResult r;
        r.seed = seed;
        // The sandbox comes first: loading a kernel runs its static constructors.
        Status sandbox = options.sandbox ? enter_sandbox(options) : Status{};
        watchdog.start();
        auto reference = SharedLibrary::open(reference_binary);
        std::optional<SharedLibrary> baseline;
        CallFn baseline_fn = nullptr;
        if (!baseline_binary.empty())
          if (auto lib = SharedLibrary::open(baseline_binary))
            if (auto fn = lib->symbol("kforge_call")) {
              baseline_fn = reinterpret_cast<CallFn>(*fn);
              baseline.emplace(std::move(*lib));
            }
        auto library = SharedLibrary::open(candidate_binary);
        auto ref_fn = reference ? reference->symbol("kforge_call") : Result<void*>(reference.error());
        auto cand_fn = library ? library->symbol("kforge_call") : Result<void*>(library.error());
        if (!ref_fn || !cand_fn || !sandbox) {
          r.status = EvalStatus::runtime_error;
          r.message = !sandbox ? sandbox.error().message : (!ref_fn ? ref_fn : cand_fn).error().message;
        } else {
          HostTarget target(reinterpret_cast<CallFn>(*cand_fn), baseline_fn, options.flush_cache);
          r = run_protocol(task, reinterpret_cast<CallFn>(*ref_fn), target, options, seed);
        }
        std::string text = to_json(r).dump();
        for (size_t done = 0; done < text.size();) {
          ssize_t n = write(output_fd, text.data() + done, text.size() - done);
          if (n <= 0) _exit(3);
          done += static_cast<size_t>(n);
        }
        // Leave now, before the libraries' destructors: dlclose would unmap libgomp under the
        // kernel's idle OpenMP threads, which then crash the process (SIGSEGV) on their way out.
        _exit(0);
      },
      options.timeout_s);

  EvalResult result;
  result.seed = seed;
  if (!child) {
    result.status = EvalStatus::runtime_error;
    result.message = child.error().message;
  } else if (child->timed_out) {
    result.status = EvalStatus::timeout;
    result.message = fmt::format("timeout after {:g} s", options.timeout_s);
  } else if (child->signal != 0) {
    result.status = EvalStatus::crash;
    result.message = "crash: " + signal_name(child->signal);
  } else if (child->exit_code == kWatchdogExit && child->output.empty()) {
    result.status = EvalStatus::timeout;
    result.message = kWatchdogMessage;
  } else if (child->exit_code != 0 || child->output.empty()) {
    result.status = EvalStatus::crash;
    result.message = fmt::format("crash: the kernel ended the process (exit code {})", child->exit_code);
  } else {
    auto parsed = nlohmann::json::parse(child->output, nullptr, false);
    auto decoded = parsed.is_discarded() ? Result<EvalResult>(make_error(ErrorKind::internal, "unreadable"))
                                         : eval_result_from_json(parsed);
    if (decoded && consistent(task, *decoded, options, seed)) return *decoded;
    // Only candidate code could have written this: the harness's own results are consistent.
    result.status = EvalStatus::runtime_error;
    result.message = "the evaluation process sent a malformed result (did the kernel write to its descriptors?)";
  }
  return result;
}

}  // namespace kforge
