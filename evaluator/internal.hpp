// Shared by the evaluator's own files, not part of its interface.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "evaluator/evaluator.hpp"

namespace kforge {

using Clock = std::chrono::steady_clock;
using CallFn = void (*)(void* const*);  // a host kernel through its trampoline

// The per-call watchdog of the process that runs a candidate (the sandboxed evaluation child for
// native code, the worker itself for a GPU): a call of the candidate that runs far longer than
// the reference's on the same shape ends the process with kWatchdogExit, so an endless kernel
// costs seconds rather than the whole evaluation's timeout.
constexpr int kWatchdogExit = 5;
constexpr const char* kWatchdogMessage =
    "timeout: one call of the kernel ran far longer than the reference's (the per-call watchdog)";
struct Watchdog {
  std::atomic<std::int64_t> deadline_ns{0};  // 0: no call running
  std::atomic<double> limit_s{10};
  pid_t watching = 0;  // the process whose thread watches (a forked child has none of its own)
  void arm() {
    deadline_ns = Clock::now().time_since_epoch().count() + static_cast<std::int64_t>(limit_s.load() * 1e9);
  }
  void disarm() { deadline_ns = 0; }
  // Starts the thread that watches, once per process.
  void start() {
    if (watching == getpid()) return;
    watching = getpid();
    std::thread([this] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::int64_t d = deadline_ns.load();
        if (d != 0 && Clock::now().time_since_epoch().count() > d) {
          dprintf(STDERR_FILENO, "kforge: one call of the kernel ran over %.3g s\n", limit_s.load());
          _exit(kWatchdogExit);
        }
      }
    }).detach();
  }
};
inline Watchdog watchdog;

// "nan" whatever its sign bit (the 0xFF poison is a negative NaN), else the shortest exact form.
inline std::string format_value(double v) {
  return std::isnan(v) ? "nan" : fmt::format("{}", v);
}

// Bytes before and after every tensor, filled with a pattern and checked after each call:
// a kernel writing out of bounds is caught instead of corrupting the harness.
constexpr size_t kGuardBytes = 64;
constexpr unsigned char kGuardPattern = 0xA5;

// 64-byte aligned, uninitialised storage for one argument, between two guard zones.
struct Buffer {
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte[], Free> storage;
  size_t bytes = 0;

  std::byte* data() const { return storage.get() + kGuardBytes; }

  static Buffer make(size_t bytes) {
    Buffer b;
    b.bytes = bytes;
    const size_t rounded = (bytes + 63) / 64 * 64;
    b.storage.reset(static_cast<std::byte*>(std::aligned_alloc(64, rounded + 2 * kGuardBytes)));
    if (!b.storage) throw std::bad_alloc();
    std::memset(b.storage.get(), kGuardPattern, kGuardBytes);
    std::memset(b.data() + bytes, kGuardPattern, rounded - bytes + kGuardBytes);
    return b;
  }
  Buffer clone() const {
    Buffer b = make(bytes);
    std::memcpy(b.data(), data(), bytes);
    return b;
  }
  bool guards_intact() const {
    const size_t rounded = (bytes + 63) / 64 * 64;
    auto clean = [](const std::byte* p, size_t n) {
      for (size_t i = 0; i < n; ++i)
        if (p[i] != std::byte{kGuardPattern}) return false;
      return true;
    };
    return clean(storage.get(), kGuardBytes) && clean(data() + bytes, rounded - bytes + kGuardBytes);
  }
};

// One call's arguments: a buffer per task argument (tensor data, or one size/scalar value) and
// the pointer array the trampoline reads.
struct CallArgs {
  std::vector<Buffer> buffers;
  std::vector<void*> pointers() const {
    std::vector<void*> out;
    for (const auto& b : buffers) out.push_back(b.data());
    return out;
  }
  CallArgs clone() const {
    CallArgs out;
    for (const auto& b : buffers) out.buffers.push_back(b.clone());
    return out;
  }
};


// ---- a call's inputs (inputs.cpp) ----

// Elements of tensor `arg` on `dims`.
std::int64_t element_count(const TaskArg& arg, const Bindings& dims);
// Elements in a buffer of `dtype` (a quantized tensor's blocks, unpacked).
size_t buffer_elements(const Buffer& buffer, DType dtype);
bool is_output(const TaskArg& arg);  // out or inout
// Fills tensor `buffer` from `arg`'s distribution on `dims` (quantized block by block).
void fill(Buffer& buffer, const TaskArg& arg, std::mt19937_64& rng, const Bindings& dims);
// A call's arguments on `dims`: inputs drawn from their distributions (as trial `trial` varies
// them), outputs zeroed, sizes and scalars set.
CallArgs make_inputs(const Task& task, const Bindings& dims, std::mt19937_64& rng, int trial = 0);
// The sizes of a call, read back from its size arguments (what launch lines are written in).
Bindings call_dims(const Task& task, const CallArgs& args);
// The candidate's copy of a call's arguments: inputs copied, outputs poisoned (0xFF).
CallArgs candidate_args(const Task& task, const CallArgs& initial);
// Draws `count` elements of every input tensor afresh at random positions; their byte offsets
// per argument go to `changed` when given.
void redraw_some(const Task& task, CallArgs& inputs, std::mt19937_64& rng,
                 std::vector<std::vector<size_t>>* changed = nullptr, int count = 16);
// The input sets the timed calls on `dims` cycle through (2 to 8); set 0 drawn by `inputs_rng`.
std::vector<CallArgs> timing_pool(const Task& task, const Bindings& dims, std::mt19937_64 inputs_rng,
                                  std::mt19937_64& rng);
// A shape within the task's constraints and its check shapes' ranges, and none of its listed
// shapes; nothing when a thousand draws found none.
std::optional<Bindings> held_out_shape(const Task& task, std::mt19937_64& rng);

// ---- checking a call (compare.cpp) ----

std::vector<const Buffer*> views(const CallArgs& args);
// Hashes of the `in` tensors (empty strings elsewhere).
std::vector<std::string> input_hashes(const Task& task, const CallArgs& args);
// Writing outside a tensor or changing an input, said in one line; empty when the call kept to its outputs.
std::string misbehaviour(const Task& task, const std::vector<const Buffer*>& buffers,
                         const std::vector<std::string>& input_hashes);
// Elementwise got vs want over the outputs, into `out` (correct, errors, first mismatches).
void compare(const Task& task, const CallArgs& got, const CallArgs& want, ShapeResult& out);

// Why a checked timed call failed (empty: it computed something else) and the shape's mismatches.
using TimedFailure = std::pair<std::string, ShapeResult>;
// The baseline's output on a checked call against the reference's: a baseline that computes
// something else (a vendor call with a transpose missed) makes every speedup against it
// meaningless, so the evaluation fails as runtime_error, saying the task's baseline is wrong.
std::optional<TimedFailure> check_baseline(const Task& task, const CallArgs& got, const CallArgs& want);

// ---- timing statistics (statistics.cpp) ----

TimingStats summarize(std::vector<double> samples_us);

// ---- task validation (reference_check.cpp) ----

// Why the reference does not compute from its inputs, found by running it on the check shapes
// (Evaluator::check_reference); empty when it does.
std::string reference_problem(const Task& task, CallFn reference);
// The worker's side of {"type": "validate", "task_dir", "reference"}: {"problem": "..."} (empty
// when the reference passed), or {"error": "..."}.
nlohmann::json validate_reference(const nlohmann::json& request);

// ---- the protocol (harness.cpp) and its targets (host_target.cpp, device_target.cpp) ----

// Where the protocol runs the kernels under test: in this process (cpu), or on a device.
class Target {
 public:
  virtual ~Target() = default;
  // Runs the candidate once on host arguments, leaving its outputs, and every guard zone, in `args`.
  virtual Status run(const Task& task, CallArgs& args) = 0;
  // Whether a baseline is timed beside the candidate.
  virtual bool has_baseline() const = 0;
  // Times the candidate, and the baseline interleaved with it, on one bench shape whose input sets
  // are `pool`, checking a random eighth of the candidate's calls and one more against `reference`.
  virtual std::optional<TimedFailure> time(const Task& task, CallFn reference, std::vector<CallArgs>& pool,
                                           const EvalOptions& options, std::mt19937_64& rng,
                                           std::vector<double>& candidate_us, std::vector<double>& baseline_us) = 0;
  // A sticky device error: this process can run nothing more.
  virtual bool dead() const { return false; }
  // The device the kernels run on; null for the host.
  virtual const DeviceInfo* device() const { return nullptr; }
  // Its memory bandwidth as its copy kernel measured it (copy_bandwidth); 0 when unknown.
  virtual double copy_bytes_per_s() const { return 0; }
  // The baseline it times, as results name it; empty: the evaluator's own choice (the host's).
  virtual std::string baseline_name() const { return {}; }
};

// The correctness and timing protocol of one candidate on `target`; the reference runs on the host.
EvalResult run_protocol(const Task& task, CallFn reference, Target& target, const EvalOptions& options,
                        std::uint64_t seed);
// Whether `r` is a result run_protocol could have produced for `seed` (a forgery by the candidate,
// which runs in the process that sends it, is not).
bool consistent(const Task& task, const EvalResult& r, const EvalOptions& options, std::uint64_t seed);

// An evaluation of native code: run_protocol on a HostTarget, in a sandboxed child of the worker;
// how the child ended becomes the status (a timeout, a crash, a malformed result).
EvalResult run_sandboxed(const Task& task, const std::string& reference_binary, const std::string& baseline_binary,
                         const std::string& candidate_binary, const EvalOptions& options, std::uint64_t seed);

// A GPU target in the worker: the candidate and the baseline (optional) as backend sources and
// binaries, on device `index` of backend `backend` (opened once per worker). `vendor` (optional,
// {"file_name", "path"}): the task's compiled baseline.cuda, timed instead of `baseline` where its
// library loads here. `copy_probe` (optional, {"path", "format", "arch"}): compile_copy_probe's
// binary, which measures the device's bandwidth on the first request that brings it.
Result<std::unique_ptr<Target>> make_device_target(const std::string& backend, int index, const nlohmann::json& candidate,
                                                   const nlohmann::json& baseline, const nlohmann::json& vendor,
                                                   const nlohmann::json& copy_probe);

// ---- the worker's side (serve.cpp) ----

// The worker's side of one request: {"type": "ping"}, {"type": "validate", ...} or {"type": "eval", ...}.
nlohmann::json serve_request(const nlohmann::json& request);
// Set by serve_request when this worker can serve nothing more (a dead GPU context).
inline bool exit_after_answer = false;

nlohmann::json to_json(const EvalOptions& options);

// An integer field of a result, a request or an answer: a JSON integer, never a float, else a
// json::type_error. nlohmann casts a float that does not fit (1e300) to an integer with undefined
// behaviour (found by tests/fuzz), and a result comes from the process that ran the candidate.
template <class Int>
Int integer(const nlohmann::json& j) {
  if (!j.is_number_integer())
    throw nlohmann::json::type_error::create(302, fmt::format("expected an integer, not {}", j.type_name()), &j);
  return j.get<Int>();
}
template <class Int>
Int integer_or(const nlohmann::json& j, const char* key, Int fallback) {
  return j.contains(key) ? integer<Int>(j.at(key)) : fallback;
}

// ---- frames (worker.cpp) ----

// Parses one frame ("<decimal length>\n<payload>") off the front of `buffer`: the payload once it
// is complete, nothing while more bytes are needed, an error for a malformed header.
Result<std::optional<std::string>> take_frame(std::string& buffer);

// ---- the physics floor (physics.cpp) ----

// What this machine does at best: read bandwidth over hot buffers of a few sizes, FMA throughput.
struct MachineLimits {
  std::vector<std::pair<double, double>> read_bytes_per_s;  // (buffer bytes, bytes/s), sizes ascending
  double flops_per_s = 0;
  // Memory as the cpu's roofline sees it, measured with every core at once (the ladder's memory
  // step is the higher of that and one core's rate times the cores, a floor that a busy machine
  // cannot raise, but more than a VM's cores may get together): reading, and copying (bytes read
  // plus bytes written per second). 0: not measured.
  double memory_read_bytes_per_s = 0;
  double memory_copy_bytes_per_s = 0;
  double read_rate(double bytes) const;  // the fastest rate a working set of `bytes` can be read at
};

// The probe, compiled like a candidate: kforge_probe_read(bytes, threads) and
// kforge_probe_copy(bytes, threads) in bytes/s (the best of several), kforge_probe_fma(threads) in
// FLOP/s, and kforge_probe_read_passes(bytes, threads, passes) in bytes/s (one timed read).
Result<Binary> compile_probe(const Backend& host);
// The buffer size the probe measures memory on (at least 4x the last-level cache).
long memory_probe_bytes();
// What the probe measured on this machine, for two uses that want different numbers.
struct ProbedLimits {
  // The best of every run: the cheat floor. A busy machine only makes a probe slower, so the
  // highest rate ever seen is the floor least likely to call an honest kernel impossible.
  MachineLimits best;
  // The latest run alone: % of roofline. Memory bandwidth varies by a third from run to run, and
  // a past lucky maximum would make every later % look low.
  MachineLimits latest;
};
// The machine's limits: measured by the probe once, then kept beside its binary; `measure_again`
// runs it anyway (the best kept grows, the latest is replaced).
Result<ProbedLimits> probe_limits(const std::string& probe_binary, bool measure_again = false);
// The copy kernel that measures a GPU's memory bandwidth, compiled for `gpu` like a candidate.
Result<Binary> compile_copy_probe(const Backend& gpu);
// `device`'s memory bandwidth in bytes/s: the best of five copies between two buffers of twice its
// L2 (each byte read once and written once), by compile_copy_probe's kernel. Measured once per
// device model, then kept beside the kernel's binary.
Result<double> copy_bandwidth(Device& device, const Binary& copy_probe);
// A GPU's limits from its attributes (bus width and memory clock, SMs and clock), the memory rates
// raised to `copy_bytes_per_s` (copy_bandwidth's; 0: none) where that is higher, so that the floor
// never sits below what the device was seen doing; nothing when the driver did not say.
std::optional<MachineLimits> device_limits(const DeviceInfo& info, double copy_bytes_per_s = 0);
// What a GPU's % of roofline is measured against: `limits`, with the measured copy bandwidth as the
// memory rate at every working-set size (L2 is flushed before every timed call); `limits` itself
// when nothing was measured. Honest, where device_limits is generous.
MachineLimits device_roofline(const MachineLimits& limits, double copy_bytes_per_s);
// The cpu's roofline for % of roofline: the caches are flushed before every timed call
// (host_target.cpp), so every working set is read at the memory's rate, as every core together
// measured it (else the largest probed buffer's), and moved at most at the copy rate; the floor
// keeps the generous rate of the cache level the working set would fit in.
MachineLimits host_roofline(const MachineLimits& limits);
// The bytes a shape of `task` moves and the FLOPs it does, by the task's formulas; 0 without one.
double bytes_of(const Task& task, const Bindings& dims);
double flops_of(const Task& task, const Bindings& dims);
// The time a shape of `task` takes at best against `roofline` (host_roofline's or
// device_roofline's): max(bytes / read rate, FLOPs / peak); where a copy rate was measured, the
// bytes are split into reads and writes in the ratio of the task's input and output tensors
// (inout both), the reads go at the read rate and all of them at most at the copy rate.
double roofline_seconds(const Task& task, const Bindings& dims, const MachineLimits& roofline);
// Sets each timed shape's floor and % of roofline against `roofline` (else `limits`); a median
// under half the cheat floor under `limits` (every byte at the read rate of its cache level, the
// copy rate ignored: a lower bound) turns an ok result into rejected_cheat.
void apply_physics(const Task& task, const MachineLimits& limits, EvalResult& result,
                   const std::optional<MachineLimits>& roofline = std::nullopt);
EvalOptions eval_options_from_json(const nlohmann::json& j);

}  // namespace kforge
