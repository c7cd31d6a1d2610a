// The device target: the protocol's checks, with the candidate and the baseline running on a GPU.
// Runs in the worker process itself (a CUDA or HIP context does not survive fork, and the kernels
// run no host code of the candidate's); a sticky device error ends the worker after its answer.
// Device buffers mirror the host Buffers byte for byte, guard zones included, so every host-side
// check (guards, input hashes, poisoned outputs) applies unchanged to what comes back.
#include <algorithm>
#include <map>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

size_t padded(size_t bytes) {
  return (bytes + 63) / 64 * 64 + 2 * kGuardBytes;
}

// Device copies of one call's tensors (0 for sizes and scalars), freed on destruction.
class DeviceArgs {
 public:
  explicit DeviceArgs(Device& device) : device_(&device) {}
  DeviceArgs(DeviceArgs&& other) noexcept : device_(other.device_), bases_(std::exchange(other.bases_, {})) {}
  DeviceArgs(const DeviceArgs&) = delete;
  ~DeviceArgs() {
    for (DevicePtr p : bases_) device_->free(p);
  }

  // Allocates every tensor of `host` and copies it over, guard zones and all.
  static Result<DeviceArgs> upload(Device& device, const Task& task, const CallArgs& host) {
    DeviceArgs out(device);
    for (size_t i = 0; i < task.args.size(); ++i) {
      DevicePtr base = 0;
      if (task.args[i].is_tensor()) {
        auto p = device.alloc(padded(host.buffers[i].bytes));
        if (!p) return p.error();
        base = *p;
        out.bases_.push_back(base);
        if (Status s = device.copy_in(base, host.buffers[i].storage.get(), padded(host.buffers[i].bytes)); !s)
          return s.error();
      } else {
        out.bases_.push_back(0);
      }
    }
    return out;
  }
  // Copies tensor `i` back over its host mirror, guard zones and all.
  Status download(size_t i, Buffer& host) const {
    return device_->copy_out(host.storage.get(), bases_[i], padded(host.bytes));
  }
  DevicePtr data(size_t i) const { return bases_[i] + kGuardBytes; }

 private:
  Device* device_;
  std::vector<DevicePtr> bases_;
};

// One call of a loaded kernel, worked out before any timing: the dims of each launch, its
// arguments as kforge_call takes them (tensors' device addresses, sizes' and scalars' host
// addresses), and the driver's argument array made from them.
struct Plan {
  std::vector<LaunchDims> launches;
  std::vector<void*> call;
  std::vector<DevicePtr> slots;
  std::vector<void*> args;
};

// The plan of `kernel` for a call on `host` (sizes and scalars), tensors at `tensors(i)`.
Result<std::unique_ptr<Plan>> plan(const DeviceKernel& kernel, const Task& task, const CallArgs& host,
                                   const std::function<DevicePtr(size_t)>& tensors, DevicePtr workspace) {
  auto p = std::make_unique<Plan>();
  auto launches = kernel.launch_dims(call_dims(task, host));
  if (!launches) return launches.error();
  p->launches = std::move(*launches);
  p->call.resize(task.args.size());
  for (size_t i = 0; i < task.args.size(); ++i)
    p->call[i] = task.args[i].is_tensor() ? reinterpret_cast<void*>(tensors(i)) : host.buffers[i].data();
  p->slots.assign(task.args.size() + 1, 0);
  p->args.assign(task.args.size() + 1, nullptr);
  kernel.marshal(task, p->call.data(), workspace, p->slots.data(), p->args.data());
  return p;
}

// A vendor library's kernel called from the host: kforge_call of a task's compiled baseline.cuda,
// which enqueues one call on the device's stream and returns null, or what went wrong.
using HostLaunchFn = const char* (*)(void* const*);

// What the device target times: a GPU kernel, or a task's vendor baseline, host code that enqueues
// the library's kernel (its `kernel` empty: no module, no launches, no workspace).
struct TimedKernel {
  DeviceKernel kernel;
  HostLaunchFn host_launch = nullptr;
  std::string name;  // its file

  // Enqueues the planned call (host code: the device's context current since the harness's last
  // call on it).
  Status launch(Device& device, Plan& plan) const {
    if (!host_launch) return kernel.launch(device, plan.launches, plan.args.data());
    if (const char* why = host_launch(plan.call.data())) return make_error(ErrorKind::internal, "{}: {}", name, why);
    return {};
  }
};

// Device memory freed when it goes out of scope.
class Scratch {
 public:
  Scratch(Device& device, DevicePtr ptr) : device_(&device), ptr(ptr) {}
  Scratch(Scratch&& other) noexcept : device_(other.device_), ptr(std::exchange(other.ptr, 0)) {}
  Scratch(const Scratch&) = delete;
  ~Scratch() { device_->free(ptr); }

 private:
  Device* device_;

 public:
  DevicePtr ptr;
};

// The kernel's workspace for a call on `args`, zeroed; 0 when it declares none.
Result<DevicePtr> scratch(Device& device, const DeviceKernel& kernel, const Task& task, const CallArgs& args) {
  auto bytes = kernel.workspace_bytes(call_dims(task, args));
  if (!bytes) return bytes.error();
  if (*bytes == 0) return DevicePtr{0};
  auto p = device.alloc(*bytes);
  if (!p) return p.error();
  if (Status z = device.fill(*p, 0, *bytes); !z) {
    device.free(*p);
    return z.error();
  }
  return *p;
}

// Failures of the device or of the harness, not of the candidate's arithmetic.
std::optional<TimedFailure> fail(const Error& e) {
  ShapeResult not_a_mismatch;
  not_a_mismatch.correct = true;
  return std::optional<TimedFailure>(TimedFailure{e.message, not_a_mismatch});
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One bench shape's timing on the device (DeviceTarget::time), in its steps: prepare, warm_up,
// timed_loop, clock_check, last_check. It holds the device copy of each input set of `pool`, and
// for each timed kernel (the candidate, then the baseline if any) its own outputs, its workspace
// and its call planned on every input set; the events around each call; and the host clock's and
// the events' times of the recorded calls.
class DeviceTiming {
 public:
  DeviceTiming(Device& device, const Task& task, CallFn reference, std::vector<CallArgs>& pool, std::mt19937_64& rng,
               std::vector<const TimedKernel*> kernels)
      : device_(device), task_(task), reference_(reference), pool_(pool), rng_(rng), kernels_(std::move(kernels)) {}

  // Uploads the input sets, gives each kernel its outputs and workspace, plans its calls, and
  // creates the events.
  std::optional<TimedFailure> prepare() {
    for (const CallArgs& entry : pool_) {
      auto d = DeviceArgs::upload(device_, task_, entry);
      if (!d) return fail(d.error());
      inputs_.push_back(std::move(*d));
    }
    plans_.resize(kernels_.size());
    for (size_t k = 0; k < kernels_.size(); ++k) {
      auto d = DeviceArgs::upload(device_, task_, pool_[0]);
      if (!d) return fail(d.error());
      outputs_.push_back(std::move(*d));
      const DeviceKernel& kernel = kernels_[k]->kernel;
      auto w = scratch(device_, kernel, task_, pool_[0]);
      if (!w) return fail(w.error());
      workspaces_.emplace_back(device_, *w);
      auto bytes = kernel.workspace_bytes(call_dims(task_, pool_[0]));
      if (!bytes) return fail(bytes.error());
      workspace_bytes_.push_back(*bytes);
      for (size_t e = 0; e < pool_.size(); ++e) {
        auto tensors = [&](size_t i) { return is_output(task_.args[i]) ? outputs_[k].data(i) : inputs_[e].data(i); };
        auto planned = plan(kernel, task_, pool_[e], tensors, workspaces_[k].ptr);
        if (!planned) return fail(planned.error());
        plans_[k].push_back(std::move(*planned));
      }
    }
    auto before = device_.create_event(), start = device_.create_event(), end = device_.create_event();
    for (auto* event : {&before, &start, &end})
      if (!*event) return fail(event->error());
    before_ = std::move(*before), start_ = std::move(*start), end_ = std::move(*end);
    return std::nullopt;
  }

  // Every kernel in turn, unrecorded, for at least 3 rounds and options.warmup_s.
  std::optional<TimedFailure> warm_up(const EvalOptions& options) {
    const auto warmup_start = Clock::now();  // (the first calls also load each kernel's code)
    for (int calls = 0; calls < 3 || seconds_since(warmup_start) < options.warmup_s; ++calls, ++next_)
      for (size_t k = 0; k < kernels_.size(); ++k)
        if (Status s = call(k, next_ % pool_.size(), nullptr); !s) return fail(s.error());
    return std::nullopt;
  }

  // The recorded calls, the candidate's and the baseline's interleaved on freshly redrawn inputs,
  // a random eighth of the candidate's checked, until the options say the samples are enough.
  std::optional<TimedFailure> timed_loop(const EvalOptions& options, std::vector<double>& candidate_us,
                                         std::vector<double>& baseline_us) {
    auto settled = [&](const std::vector<double>& samples) {
      const TimingStats s = summarize(samples);
      return s.std_us / std::sqrt(s.n) < options.target_relative_se * s.median_us;
    };
    const auto timing_start = Clock::now();
    for (;; ++next_) {
      const size_t e = next_ % pool_.size();
      if (Status s = redraw(e); !s) return fail(s.error());
      if (rng_() % 8 == 0) {
        if (auto failure = checked_call(e, &candidate_us)) return failure;
      } else if (Status s = call(0, e, &candidate_us); !s) {
        return fail(s.error());
      }
      if (has_baseline())
        if (Status s = call(1, e, &baseline_us); !s) return fail(s.error());
      const int n = static_cast<int>(candidate_us.size());
      if (n >= options.max_repeats) break;
      if (n < options.min_repeats) continue;
      if (seconds_since(timing_start) >= options.max_time_per_shape_s) break;
      if (settled(candidate_us) && (!has_baseline() || settled(baseline_us))) break;
    }
    return std::nullopt;
  }

  // The host clock against the events over the recorded calls.
  std::optional<TimedFailure> clock_check() const {
    // A typical call, not one the OS preempted: medians.
    const double host = summarize(host_us_).median_us, window = summarize(window_us_).median_us;
    if (host > 2 * window + 50) {
      ShapeResult escaped;
      escaped.correct = true;
      return TimedFailure{fmt::format("the host clock saw {:.1f} us per call where the device's events saw {:.1f} us: "
                                      "work escaped the timed stream (another stream, or a kernel still running)",
                                      host, window),
                          escaped};
    }
    return std::nullopt;
  }

  // One more checked call of the candidate after the last, then (with `baseline_too`) the baseline's
  // output on the same inputs against the reference's.
  std::optional<TimedFailure> last_check(bool baseline_too) {
    const size_t e = next_ % pool_.size();
    if (Status s = redraw(e); !s) return fail(s.error());
    if (auto failure = checked_call(e, nullptr); failure || !has_baseline() || !baseline_too) return failure;
    if (Status s = call(1, e, nullptr); !s) return fail(s.error());
    CallArgs got = pool_[e].clone();
    for (size_t i = 0; i < task_.args.size(); ++i)
      if (is_output(task_.args[i]))
        if (Status s = outputs_[1].download(i, got.buffers[i]); !s) return fail(s.error());
    CallArgs want = candidate_args(task_, pool_[e]);
    reference_(want.pointers().data());
    return check_baseline(task_, got, want);
  }

 private:
  bool has_baseline() const { return kernels_.size() > 1; }

  // One call of kernel k on input set e; its time in microseconds goes to `samples` when given.
  Status call(size_t k, size_t e, std::vector<double>* samples) {
    for (size_t i = 0; i < task_.args.size(); ++i) {
      const Buffer& b = pool_[e].buffers[i];
      Status s;
      if (task_.args[i].role == ArgRole::out) s = device_.fill(outputs_[k].data(i), 0xFF, b.bytes);
      if (task_.args[i].role == ArgRole::inout) s = device_.copy_in(outputs_[k].data(i), b.data(), b.bytes);
      if (!s) return s;
    }
    if (workspace_bytes_[k] > 0)
      if (Status s = device_.fill(workspaces_[k].ptr, 0, workspace_bytes_[k]); !s) return s;
    // The host clock starts once the copies and fills above are done: it watches what the
    // events watch, so a gap between the two is work the events did not see.
    if (Status s = device_.synchronize(); !s) return s;
    watchdog.arm();
    const auto t0 = Clock::now();
    Status s = device_.record(*before_);
    if (s) s = device_.flush_l2();
    if (s) s = device_.record(*start_);
    if (s) s = kernels_[k]->launch(device_, *plans_[k][e]);
    if (s) s = device_.record(*end_);
    if (s) s = device_.synchronize();
    const double host = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    watchdog.disarm();
    if (!s) return s;
    auto kernel_ms = device_.elapsed_ms(*start_, *end_);
    auto window_ms = device_.elapsed_ms(*before_, *end_);
    if (!kernel_ms || !window_ms) return (!kernel_ms ? kernel_ms : window_ms).error();
    if (samples) {
      samples->push_back(*kernel_ms * 1000);
      host_us_.push_back(host);
      window_us_.push_back(*window_ms * 1000);
    }
    return {};
  }

  // The candidate's call on set e, checked against the reference on the host.
  std::optional<TimedFailure> checked_call(size_t e, std::vector<double>* samples) {
    const auto hashes = input_hashes(task_, pool_[e]);
    if (Status s = call(0, e, samples); !s) return fail(s.error());
    CallArgs got = pool_[e].clone();
    for (size_t i = 0; i < task_.args.size(); ++i) {
      if (!task_.args[i].is_tensor()) continue;
      Status s = is_output(task_.args[i]) ? outputs_[0].download(i, got.buffers[i]) : inputs_[e].download(i, got.buffers[i]);
      if (!s) return fail(s.error());
    }
    std::string why = misbehaviour(task_, views(got), hashes);
    CallArgs want = candidate_args(task_, pool_[e]);
    reference_(want.pointers().data());
    ShapeResult check;
    compare(task_, got, want, check);
    if (why.empty() && check.correct) return std::nullopt;
    return TimedFailure{why, check};
  }

  // Redraws a few inputs of set e on the host, and the same bytes on the device: an element, or
  // a whole block of a quantized tensor, at each changed offset.
  Status redraw(size_t e) {
    std::vector<std::vector<size_t>> changed;
    redraw_some(task_, pool_[e], rng_, &changed);
    for (size_t i = 0; i < changed.size(); ++i) {
      const size_t unit = static_cast<size_t>(block_bytes(task_.args[i].dtype));
      for (size_t offset : changed[i])
        if (Status s = device_.copy_in(inputs_[e].data(i) + offset, pool_[e].buffers[i].data() + offset, unit); !s)
          return s;
    }
    return {};
  }

  Device& device_;
  const Task& task_;
  CallFn reference_;
  std::vector<CallArgs>& pool_;
  std::mt19937_64& rng_;
  std::vector<const TimedKernel*> kernels_;
  std::vector<DeviceArgs> inputs_;   // one device copy of each input set
  std::vector<DeviceArgs> outputs_;  // each kernel's own outputs (the input slots unused)
  std::vector<Scratch> workspaces_;
  std::vector<std::size_t> workspace_bytes_;
  std::vector<std::vector<std::unique_ptr<Plan>>> plans_;  // [kernel][input set]
  std::unique_ptr<Event> before_, start_, end_;
  std::vector<double> host_us_, window_us_;  // the cross-check, over recorded calls
  size_t next_ = 0;  // rounds so far, the warm-up's included: round i runs on input set i mod |pool|
};

class DeviceTarget final : public Target {
 public:
  DeviceTarget(Device& device, TimedKernel candidate, std::optional<TimedKernel> baseline, std::string baseline_name,
               double copy_bytes_per_s)
      : device_(device), candidate_(std::move(candidate)), baseline_(std::move(baseline)),
        baseline_name_(std::move(baseline_name)), copy_bytes_per_s_(copy_bytes_per_s) {}

  bool has_baseline() const override { return baseline_.has_value(); }
  std::string baseline_name() const override { return baseline_name_; }
  bool dead() const override { return device_.dead(); }
  const DeviceInfo* device() const override { return &device_.info(); }
  double copy_bytes_per_s() const override { return copy_bytes_per_s_; }

  Status run(const Task& task, CallArgs& args) override {
    auto on_device = DeviceArgs::upload(device_, task, args);
    if (!on_device) return on_device.error();
    auto allocated = scratch(device_, candidate_.kernel, task, args);
    if (!allocated) return allocated.error();
    const Scratch workspace(device_, *allocated);
    auto planned = plan(candidate_.kernel, task, args, [&](size_t i) { return on_device->data(i); }, workspace.ptr);
    if (!planned) return planned.error();
    watchdog.arm();
    Status s = candidate_.launch(device_, **planned);
    if (s) s = device_.synchronize();
    watchdog.disarm();
    for (size_t i = 0; s && i < task.args.size(); ++i)
      if (task.args[i].is_tensor()) s = on_device->download(i, args.buffers[i]);
    return s;
  }

  // The timing loop of the host target, on the device. Each call enqueues, with no host work in
  // between: outputs poisoned (inout restored), workspace zeroed, an event, the L2 flush, the
  // start event, the launches, the end event. The host clock around the whole call is compared
  // with the events around it afterwards: a kernel whose work escapes the stream shows there.
  std::optional<TimedFailure> time(const Task& task, CallFn reference, std::vector<CallArgs>& pool,
                                   const EvalOptions& options, std::mt19937_64& rng, std::vector<double>& candidate_us,
                                   std::vector<double>& baseline_us) override {
    std::vector<const TimedKernel*> kernels = {&candidate_};
    if (baseline_) kernels.push_back(&*baseline_);
    DeviceTiming timing(device_, task, reference, pool, rng, std::move(kernels));
    if (auto failure = timing.prepare()) return failure;
    if (auto failure = timing.warm_up(options)) return failure;
    if (auto failure = timing.timed_loop(options, candidate_us, baseline_us)) return failure;
    if (auto failure = timing.clock_check()) return failure;
    return timing.last_check(options.check_baseline);
  }

 private:
  Device& device_;
  TimedKernel candidate_;
  std::optional<TimedKernel> baseline_;
  std::string baseline_name_;
  double copy_bytes_per_s_;
};

// The kernel a request describes: {"source", "file_name", "binary": {"path", "format", "arch"}}.
Result<DeviceKernel> load_kernel(Device& device, const std::string& backend, const nlohmann::json& j) {
  try {
    const std::string file_name = j.at("file_name").get<std::string>();
    auto candidate = parse_candidate(j.at("source").get<std::string>(), file_name);
    if (!candidate) return candidate.error();
    const nlohmann::json& b = j.at("binary");
    Binary binary{.backend = backend,
                  .arch = b.at("arch").get<std::string>(),
                  .format = b.at("format").get<std::string>(),
                  .path = b.at("path").get<std::string>()};
    return load_device_kernel(device, std::move(*candidate), binary, file_name);
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::internal, "malformed kernel in the request: {}", e.what());
  }
}

// A task's vendor baseline (baseline.cuda: host code, compiled), {"file_name", "path"}: loaded, and
// bound to the device's stream by its kforge_baseline_open, once per worker and stream; a failure
// (no cuBLAS on this machine) is kept as well, so the library is looked for once.
Result<TimedKernel> load_host_baseline(Device& device, const nlohmann::json& j) {
  std::string path, file_name;
  try {
    path = j.at("path").get<std::string>(), file_name = j.at("file_name").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::internal, "malformed vendor baseline in the request: {}", e.what());
  }
  // Never unloaded: the library's handle and the device memory it holds live as long as the worker.
  static auto& bound = *new std::map<std::pair<std::string, void*>, Result<HostLaunchFn>>();
  static auto& libraries = *new std::vector<SharedLibrary>();
  auto [it, fresh] = bound.try_emplace({path, device.native_stream()}, Error{ErrorKind::internal, "not loaded"});
  if (fresh) {
    it->second = [&]() -> Result<HostLaunchFn> {
      auto library = SharedLibrary::open(path);
      if (!library) return library.error();
      auto open = library->symbol("kforge_baseline_open");
      auto call = library->symbol("kforge_call");
      if (!open || !call) return (!open ? open : call).error();
      // The library (cuBLAS through the CUDA runtime) attaches to the context current on this thread:
      // synchronize() makes the device's current.
      if (Status s = device.synchronize(); !s) return s.error();
      if (const char* why = reinterpret_cast<const char* (*)(void*)>(*open)(device.native_stream()))
        return make_error(ErrorKind::io, "{}", why);
      libraries.push_back(std::move(*library));
      return reinterpret_cast<HostLaunchFn>(*call);
    }();
  }
  if (!it->second) return it->second.error();
  return TimedKernel{DeviceKernel{}, *it->second, file_name};
}

}  // namespace

Result<std::unique_ptr<Target>> make_device_target(const std::string& backend, int index, const nlohmann::json& candidate,
                                                   const nlohmann::json& baseline, const nlohmann::json& vendor,
                                                   const nlohmann::json& copy_probe) {
  // One device per worker, opened on first use and kept (with its backend) for the worker's life.
  struct Open {
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Device> device;
    bool probed = false;
    double copy_bytes_per_s = 0;  // measured; 0: not (yet), or the probe failed
  };
  static std::map<std::pair<std::string, int>, Open> open;
  Open& slot = open[{backend, index}];
  if (!slot.device) {
    auto b = make_backend(backend, CompileCache::at());
    if (!b) return b.error();
    auto d = (*b)->open_device(index);
    if (!d) return d.error();
    slot.backend = std::move(*b), slot.device = std::move(*d);
  }
  Device& device = *slot.device;
  if (device.dead()) return make_error(ErrorKind::internal, "{} device {}: dead since a sticky error", backend, index);
  if (!slot.probed && !copy_probe.is_null()) {
    slot.probed = true;
    auto copy = copy_bandwidth(device, Binary{.backend = backend,
                                              .arch = copy_probe.at("arch").get<std::string>(),
                                              .format = copy_probe.at("format").get<std::string>(),
                                              .path = copy_probe.at("path").get<std::string>()});
    if (copy)
      slot.copy_bytes_per_s = *copy;
    else  // the roofline falls back to the attributes'
      fmt::print(stderr, "kforge worker: {} device {}: no measured bandwidth: {}\n", backend, index, copy.error().message);
    if (device.dead()) return make_error(ErrorKind::internal, "{} device {}: dead since a sticky error", backend, index);
  }
  auto kernel = load_kernel(device, backend, candidate);
  if (!kernel) return kernel.error();
  // The vendor's kernel where its library loads here, else the naive seed, named with the reason.
  std::optional<TimedKernel> base;
  std::string unavailable;
  if (!vendor.is_null()) {
    if (auto v = load_host_baseline(device, vendor))
      base = std::move(*v);
    else
      unavailable = fmt::format(" ({} unavailable: {})", vendor.value("file_name", "the vendor baseline"), v.error().message);
  }
  if (!base && !baseline.is_null()) {
    auto b = load_kernel(device, backend, baseline);
    if (!b) return make_error(ErrorKind::internal, "the baseline: {}", b.error().message);
    base = TimedKernel{std::move(*b), nullptr, baseline.value("file_name", "")};
  }
  std::string name = base ? base->name + unavailable : "";
  return std::unique_ptr<Target>(std::make_unique<DeviceTarget>(
      device, TimedKernel{std::move(*kernel), nullptr, candidate.value("file_name", "")}, std::move(base),
      std::move(name), slot.copy_bytes_per_s));
}

}  // namespace kforge
