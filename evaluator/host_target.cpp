// The host target: native (cpu) kernels, called through their trampolines in a sandboxed child
// of the worker. run_sandboxed forks that child, which enters the sandbox before it loads any
// kernel and runs the protocol on a HostTarget; the worker then turns how the child ended (its
// result, a timeout, a signal, an exit code) into a status, and checks that the result is one the
// harness could have produced, since candidate code ran in the process that sent it. The timing
// loop, time_interleaved, calls the candidate and the baseline in turn, each through a Runner with
// outputs of its own, the caches flushed before each call.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// Twice the last-level cache, capped: VMs report the whole socket's L3 (300 MiB here), and
// reading 600 MiB before each call would cost ~30 ms of flushing per sample.
size_t flush_bytes() {
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  long llc = l3 > 0 ? l3 : l2 > 0 ? l2 : 32l << 20;
  return std::min<size_t>(2 * static_cast<size_t>(llc), 64u << 20);
}

// What the worker decides for one timed call, sent only once the call has returned: whether
// it is checked, and the seed that redraws the next call's inputs. A kernel can read anything in
// its own process, so neither may live there before it matters.
struct Decision {
  bool check = false;
  std::uint64_t next_seed = 0;
};
constexpr size_t kDecisionBytes = 9;
// Where the cache flush's loads go, so that they are not optimised away.
volatile std::uint64_t flush_sink = 0;
constexpr int kCalibrationPairs = 16;

// The child's end of the worker's clock: one byte at each timed call's start ('b') and end ('e'),
// answered by the Decision for that call; 'q' asks for a first seed; 'c'/'d' are empty calls
// that measure what the handshake itself costs.
struct ParentClock {
  int fd = -1;
  void tell(char c) const { (void)!write(fd, &c, 1); }
  // The worker's answer; nothing when the channel broke (a kernel that read from it).
  std::optional<Decision> answer() const {
    unsigned char bytes[kDecisionBytes];
    for (size_t got = 0; got < sizeof bytes;) {
      const ssize_t n = read(fd, bytes + got, sizeof bytes - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      got += static_cast<size_t>(n);
    }
    if (bytes[0] != 'C' && bytes[0] != 'U') return std::nullopt;
    Decision d;
    d.check = bytes[0] == 'C';
    std::memcpy(&d.next_seed, bytes + 1, sizeof d.next_seed);
    return d;
  }
  std::optional<Decision> ask() const {
    tell('q');
    return answer();
  }
  void calibrate() const {
    for (int i = 0; i < kCalibrationPairs; ++i) {
      tell('c');
      [[maybe_unused]] const auto t0 = Clock::now(), t1 = Clock::now();
      tell('d');
    }
  }
};

// The worker's end: a thread that timestamps each timed call from outside the child, where the
// kernel cannot reach the clock or the records, and draws the decisions from a secret generator.
class OutsideClock {
 public:
  explicit OutsideClock(int fd) : fd_(fd), thread_([this] { serve(); }) {}
  OutsideClock(const OutsideClock&) = delete;
  ~OutsideClock() { finish(); }
  // Waits for the child's end to close (the child is gone); the totals are final after it.
  void finish() {
    if (thread_.joinable()) thread_.join();
  }
  // The timed calls of each shape (each time() asks once, 'q', before its first call).
  struct Shape {
    std::vector<double> calls_us;  // each call's, from 'b' to 'e'
  };
  const std::vector<Shape>& shapes() const { return shapes_; }
  bool broken() const { return broken_; }
  // What one handshake adds to a call's outside time: the median of the empty calls.
  double overhead_us() const { return median(calibration_us_); }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }

 private:
  void serve() {
    std::random_device device;
    std::mt19937_64 secret((static_cast<std::uint64_t>(device()) << 32) ^ device());
    Clock::time_point begun;
    char open = 0;
    for (char c;;) {
      const ssize_t n = read(fd_, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      const auto now = Clock::now();
      const double us = std::chrono::duration<double, std::micro>(now - begun).count();
      if (c == 'b' || c == 'c') {
        broken_ |= open != 0;
        if (broken_) break;
        open = c, begun = now;
        continue;
      }
      if (c == 'd' && open == 'c') calibration_us_.push_back(us);
      if (c == 'e' && open == 'b' && !shapes_.empty()) shapes_.back().calls_us.push_back(us);
      if (c == 'q') shapes_.emplace_back();
      if (c != 'q' && c != (open == 'b' ? 'e' : 'd')) broken_ = true;
      open = 0;
      if (broken_) break;
      if (c == 'd') continue;
      unsigned char reply[kDecisionBytes];
      reply[0] = c == 'e' && secret() % 8 == 0 ? 'C' : 'U';  // a random eighth of the timed calls
      const std::uint64_t seed = secret();
      std::memcpy(reply + 1, &seed, sizeof seed);
      if (send(fd_, reply, sizeof reply, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof reply)) broken_ = true;
    }
    // A stray byte: no more answers, so the harness in the child stops at once; whatever else
    // arrives is drained, so that no write of the child's ever blocks on a full socket.
    shutdown(fd_, SHUT_WR);
    char sink[4096];
    for (ssize_t n; (n = read(fd_, sink, sizeof sink)) != 0;)
      if (n < 0 && errno != EINTR) break;
  }

  int fd_;
  std::vector<Shape> shapes_;
  bool broken_ = false;
  std::vector<double> calibration_us_;
  std::thread thread_;
};

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
  // alone is recorded when `record`. `before` runs last before the clock starts (the cache flush);
  // `outside`, when given, hears of the call's start and end (the worker times it too).
  void call(const Task& task, const CallArgs& inputs, bool record, const std::function<void()>& before = {},
            const ParentClock* outside = nullptr) {
    for (size_t i = 0; i < task.args.size(); ++i) {
      Buffer& b = own.buffers[i];
      if (task.args[i].role == ArgRole::out) std::memset(b.data(), 0xFF, b.bytes);
      if (task.args[i].role == ArgRole::inout) std::memcpy(b.data(), inputs.buffers[i].data(), b.bytes);
    }
    std::vector<void*> pointers;
    for (const Buffer* b : arguments(task, inputs)) pointers.push_back(b->data());
    if (before) before();
    if (outside) outside->tell('b');
    watchdog.arm();
    const auto t0 = Clock::now();
    fn(pointers.data());
    const auto t1 = Clock::now();
    if (outside) outside->tell('e');
    watchdog.disarm();
    if (record) samples_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
};

// Times the candidate (timed[0]) and, when given, the baseline (timed[1]) interleaved, call for
// call, so both see the same machine. Call i reads pool input set i mod |pool|, after 16 elements
// of each input were drawn afresh: no call finds the previous call's data in the cache, and none
// sees inputs seen before, so a stored answer is never right. Before every call, outside the timed
// window, the outputs are poisoned (inout tensors restored) and the caches flushed. The worker
// times each of the candidate's calls from outside too, and decides, once a call has returned,
// whether it is checked (a random eighth, and one more call after the last) and the seed of the
// next redraw: a kernel cannot know in advance which calls go unchecked. A checked call's outputs
// are compared with the reference's on the same inputs, again outside the window, and must not
// have changed since the call returned.
std::optional<TimedFailure> time_interleaved(const Task& task, std::vector<Runner>& timed, Runner& reference,
                                             std::vector<CallArgs>& pool, const EvalOptions& options,
                                             std::vector<std::byte>& flush_buffer, const ParentClock& outside) {
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  // The flush reads, one load per line: loads fill the caches with the flush buffer's clean lines
  // and so evict the kernel's. A memset does not: glibc's large memset (rep stosb, non-temporal
  // stores) leaves most of a 1-16 MiB working set cached (read back at 56-64 GB/s on a 32 MiB-L3
  // EPYC, against 17-18 GB/s after this flush), and would add dirty lines to write back.
  auto flush = [&] {
    std::uint64_t sum = 0;
    for (size_t i = 0; i < flush_buffer.size(); i += 64)
      sum += *reinterpret_cast<const volatile std::uint64_t*>(flush_buffer.data() + i);
    flush_sink = sum;
  };
  ShapeResult no_mismatch;
  no_mismatch.correct = true;  // (the harness's failure, not a wrong output)
  const TimedFailure broken{"the harness's channel to the worker broke (did the kernel read from it?)", no_mismatch};
  // The candidate's last call on `inputs`, checked: its outputs as they were when it returned,
  // the reference's answer, and nothing else touched.
  auto check = [&](const CallArgs& inputs, const std::vector<std::string>& hashes) -> std::optional<TimedFailure> {
    std::vector<std::vector<std::byte>> at_return;
    for (size_t i = 0; i < task.args.size(); ++i)
      if (is_output(task.args[i])) at_return.emplace_back(timed[0].own.buffers[i].data(), timed[0].own.buffers[i].data() + timed[0].own.buffers[i].bytes);
    std::string why = misbehaviour(task, timed[0].arguments(task, inputs), hashes);
    reference.call(task, inputs, false);
    for (size_t i = 0, k = 0; i < task.args.size() && why.empty(); ++i)
      if (is_output(task.args[i]) && std::memcmp(at_return[k++].data(), timed[0].own.buffers[i].data(), timed[0].own.buffers[i].bytes) != 0)
        why = "the timed calls computed something else after they returned (the outputs changed later: work left running)";
    ShapeResult result;
    compare(task, timed[0].own, reference.own, result);
    if (why.empty() && result.correct) return std::nullopt;
    result.correct = false;  // whatever the reference found, what the call returned was not its answer
    return TimedFailure{why, result};
  };

  size_t next = 0;
  const auto warmup_start = Clock::now();
  for (int calls = 0; calls < 3 || seconds_since(warmup_start) < options.warmup_s; ++calls, ++next)
    for (auto& t : timed) t.call(task, pool[next % pool.size()], false);

  outside.calibrate();
  std::optional<Decision> decision = outside.ask();
  if (!decision) return broken;
  const auto start = Clock::now();
  auto settled = [&](const Runner& t) {
    const TimingStats s = summarize(t.samples_us);
    return s.std_us / std::sqrt(s.n) < options.target_relative_se * s.median_us;
  };
  for (;; ++next) {
    CallArgs& inputs = pool[next % pool.size()];
    std::mt19937_64 redraw(decision->next_seed);
    redraw_some(task, inputs, redraw);
    const auto hashes = input_hashes(task, inputs);  // (whether the call is checked is not known yet)
    timed[0].call(task, inputs, true, flush, &outside);
    decision = outside.answer();
    if (!decision) return broken;
    if (decision->check)
      if (auto failure = check(inputs, hashes)) return failure;
    for (size_t t = 1; t < timed.size(); ++t) timed[t].call(task, inputs, true, flush);
    const int n = static_cast<int>(timed[0].samples_us.size());
    if (n >= options.max_repeats) break;
    if (n < options.min_repeats) continue;
    if (seconds_since(start) >= options.max_time_per_shape_s) break;
    if (std::all_of(timed.begin(), timed.end(), settled)) break;
  }
  CallArgs& inputs = pool[next % pool.size()];
  std::mt19937_64 redraw(decision->next_seed);
  redraw_some(task, inputs, redraw);
  const auto hashes = input_hashes(task, inputs);
  timed[0].call(task, inputs, false, flush);
  if (auto failure = check(inputs, hashes)) return failure;
  if (timed.size() < 2 || !options.check_baseline) return std::nullopt;
  timed[1].call(task, inputs, false);  // the baseline, on the inputs the reference just answered
  return check_baseline(task, timed[1].own, reference.own);
}

// The cpu target: kernels called in this process (the evaluation child) through their trampolines.
class HostTarget final : public Target {
 public:
  HostTarget(CallFn candidate, CallFn baseline, bool flush, ParentClock outside)
      : candidate_(candidate), baseline_(baseline), flush_(flush), outside_(outside) {}
  Status run(const Task&, CallArgs& args) override {
    watchdog.arm();
    candidate_(args.pointers().data());
    watchdog.disarm();
    return {};
  }
  bool has_baseline() const override { return baseline_ != nullptr; }
  std::optional<TimedFailure> time(const Task& task, CallFn reference, std::vector<CallArgs>& pool,
                                   const EvalOptions& options, std::mt19937_64&, std::vector<double>& candidate_us,
                                   std::vector<double>& baseline_us) override {
    // (64 MiB, only when timing; written once, so that its pages are its own and not the zero page)
    if (flush_ && flush_buffer_.empty()) flush_buffer_.assign(flush_bytes(), std::byte{1});
    std::vector<Runner> timed;
    timed.emplace_back(task, candidate_, pool[0]);
    if (baseline_) timed.emplace_back(task, baseline_, pool[0]);
    Runner oracle(task, reference, pool[0]);
    // (the worker draws the decisions: not `rng`, whose seed the child knows)
    auto failure = time_interleaved(task, timed, oracle, pool, options, flush_buffer_, outside_);
    candidate_us = std::move(timed[0].samples_us);
    if (baseline_) baseline_us = std::move(timed[1].samples_us);
    return failure;
  }

 private:
  CallFn candidate_, baseline_;
  bool flush_;
  ParentClock outside_;
  std::vector<std::byte> flush_buffer_;
};

// The in-process clock against the worker's, shape by shape: empty when they agree. Outside,
// each call also holds two handshakes and the worker's wake-ups, which a loaded machine delays
// further; those only ever lengthen the outside time, so agreeing means the in-process median is
// at least kAgreement of the outside median, less the handshakes' median cost (measured on empty
// calls) and kSlackUs for the worker's wake-ups (a microsecond kernel measured ~35 us more outside
// than in on a loaded 2-core machine, and 2.5 ms more with that machine overloaded). Medians, not
// totals: a child descheduled for a while on a busy machine lengthens a few calls outside, which
// moved totals past the line (false rejections at load 4-5 on 2 cores), but not the median. A
// forged clock or shrunken samples worth forging shorten every call, and fall far below the line
// on calls longer than the slack.
constexpr double kAgreement = 0.5, kSlackUs = 5000;
std::string disagreement(const EvalResult& r, const OutsideClock& outside) {
  if (outside.broken()) return "the kernel's process broke the handshake with the worker's clock";
  size_t k = 0;
  for (const auto& shape : r.shapes) {
    if (!shape.timing) continue;
    const size_t seen_calls = k < outside.shapes().size() ? outside.shapes()[k].calls_us.size() : 0;
    if (seen_calls != static_cast<size_t>(shape.timing->n))
      return fmt::format("the kernel's process reported {} timed calls at {} where the worker saw {}", shape.timing->n,
                         shape_label(shape.dims), seen_calls);
    const double seen_us = OutsideClock::median(outside.shapes()[k++].calls_us);
    if (shape.timing->median_us < kAgreement * (seen_us - outside.overhead_us() - kSlackUs))
      return fmt::format("the kernel's process reported less time than passed outside it (a median of {:.0f} us in "
                         "{} timed calls at {}, {:.0f} us by the worker's clock)",
                         shape.timing->median_us, seen_calls, shape_label(shape.dims), seen_us);
  }
  return "";
}

}  // namespace

// Runs the protocol on compiled binaries in a sandboxed child of the worker, and turns how the
// child ended into a status.
EvalResult run_sandboxed(const Task& task, const std::string& reference_binary, const std::string& baseline_binary,
                         const std::string& candidate_binary, const EvalOptions& options, std::uint64_t seed) {
  EvalResult result;
  result.seed = seed;
  int channel[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    result.status = EvalStatus::runtime_error;
    result.message = fmt::format("socketpair: {}", std::strerror(errno));
    return result;
  }
  OutsideClock outside(channel[0]);
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
        // Loaded: from here on no mapping is executable (the kernels cannot make code of their own).
        if (sandbox && options.sandbox) sandbox = seal_sandbox();
        if (!ref_fn || !cand_fn || !sandbox) {
          r.status = EvalStatus::runtime_error;
          r.message = !sandbox ? sandbox.error().message : (!ref_fn ? ref_fn : cand_fn).error().message;
        } else {
          HostTarget target(reinterpret_cast<CallFn>(*cand_fn), baseline_fn, options.flush_cache, ParentClock{output_fd + 1});
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
      options.timeout_s, channel[1]);
  close(channel[1]);  // the child is gone: its end closes, and the clock's thread ends
  outside.finish();
  close(channel[0]);

  if (!child) {
    result.status = EvalStatus::runtime_error;
    result.message = child.error().message;
  } else if (child->timed_out) {
    result.status = EvalStatus::timeout;
    result.message = fmt::format("timeout after {:g} s", options.timeout_s);
  } else if (child->signal == SIGSYS && options.sandbox) {
    result.status = EvalStatus::rejected_cheat;
    result.message = "the sandbox stopped the kernel's process (SIGSYS): it asked for what only an attack needs "
                     "(memfd_create, an executable mapping, userfaultfd, perf_event_open, bpf)";
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
    if (decoded && consistent(task, *decoded, options, seed)) {
      if (outside.broken() || (decoded->status == EvalStatus::ok && options.time_bench_shapes))
        if (std::string why = disagreement(*decoded, outside); !why.empty()) {
          decoded->status = EvalStatus::rejected_cheat;
          decoded->message = why;
        }
      return *decoded;
    }
    // Only candidate code could have written this: the harness's own results are consistent.
    result.status = EvalStatus::runtime_error;
    result.message = "the evaluation process sent a malformed result (did the kernel write to its descriptors?)";
  }
  return result;
}

}  // namespace kforge
