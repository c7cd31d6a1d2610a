// The worker's side of one request, serve_request: "ping"; "validate" (reference_check.cpp); and
// "eval", which loads the task (once per worker) and runs the evaluation where its backend runs
// kernels: in a sandboxed child for native code (run_sandboxed, host_target.cpp), the reported
// times then checked against the machine's physics here, outside that child; or in the worker
// itself for a GPU (evaluate_on_device, on a device_target.cpp target).
#include <sched.h>
#include <unistd.h>

#include <map>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// A GPU evaluation, in the worker itself; the reference runs on the host beside it.
EvalResult evaluate_on_device(const Task& task, const nlohmann::json& request, const EvalOptions& options,
                              std::uint64_t seed) {
  EvalResult result;
  result.seed = seed;
  static std::map<std::string, SharedLibrary> references;  // loaded once per worker
  const std::string reference_path = request.at("reference");
  auto it = references.find(reference_path);
  if (it == references.end()) {
    auto library = SharedLibrary::open(reference_path);
    if (!library) {
      result.message = library.error().message;
      return result;
    }
    it = references.emplace(reference_path, std::move(*library)).first;
  }
  auto reference = it->second.symbol("kforge_call");
  auto target = reference ? make_device_target(request.at("backend"), integer_or(request, "device", 0),
                                               request.at("candidate"),
                                               request.value("baseline", nlohmann::json()),
                                               request.value("vendor_baseline", nlohmann::json()),
                                               request.value("copy_probe", nlohmann::json()))
                          : Result<std::unique_ptr<Target>>(reference.error());
  if (!target) {
    result.status = EvalStatus::runtime_error;
    result.message = target.error().message;
    return result;
  }
  // A GPU kernel that never ends blocks the worker in its synchronize: the watchdog ends the
  // worker, and the parent reads kWatchdogExit as a timeout.
  watchdog.start();
  result = run_protocol(task, reinterpret_cast<CallFn>(*reference), **target, options, seed);
  if (result.speedup > 0) result.baseline = (*target)->baseline_name();
  // The floor from the attributes (generous), the roofline from the measured bandwidth (honest).
  const double copy = (*target)->copy_bytes_per_s();
  if (result.status == EvalStatus::ok && (*target)->device())
    if (auto limits = device_limits(*(*target)->device(), copy))
      apply_physics(task, *limits, result, device_roofline(*limits, copy));
  // A sticky error leaves the context unusable: answer, then let the next evaluation start afresh.
  if ((*target)->dead()) exit_after_answer = true;
  return result;
}

// The answer to a ping: who this worker is, so that a pool can file each result under the host and
// device that produced it. With a "backend", its devices' keys (a GPU worker sees the devices its
// CUDA_VISIBLE_DEVICES or HIP_VISIBLE_DEVICES leaves it); an error there is said, not fatal.
nlohmann::json pong(const nlohmann::json& request) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int cores = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  nlohmann::json answer = {{"pong", true}, {"pid", getpid()}, {"host", host}, {"version", KFORGE_VERSION},
                           {"cores", cores}};
  if (const std::string backend = request.value("backend", ""); !backend.empty()) {
    auto cache = CompileCache::open();
    auto opened = cache ? make_backend(backend, *cache) : Result<std::unique_ptr<Backend>>(cache.error());
    auto devices = opened ? (*opened)->devices() : Result<std::vector<DeviceInfo>>(opened.error());
    if (!devices) {
      answer["device_error"] = devices.error().message;
    } else {
      answer["devices"] = nlohmann::json::array();
      for (const auto& d : *devices) answer["devices"].push_back({{"key", device_key(d)}, {"name", d.name}});
    }
  }
  return answer;
}

}  // namespace

nlohmann::json serve_request(const nlohmann::json& request) {
  // Whatever is malformed in a request, a wrong type included, is one error answer.
  std::string type;
  try {
    type = request.value("type", "");
    if (type == "ping") return pong(request);
    if (type == "validate") return validate_reference(request);
    if (type != "eval") return {{"error", fmt::format("unknown request type '{}'", type)}};
    // A worker serves the same few tasks over and over: load each once.
    static std::map<std::string, Task> tasks;
    const std::string dir = request.at("task_dir");
    auto it = tasks.find(dir);
    if (it == tasks.end()) {
      auto task = load_task(dir);
      if (!task) return {{"error", task.error().message}};
      it = tasks.emplace(dir, std::move(*task)).first;
    }
    const EvalOptions options = eval_options_from_json(request.at("options"));
    const auto seed = integer<std::uint64_t>(request.at("seed"));
    auto conventions = kernel_conventions(request.value("backend", "cpu"));
    if (!conventions) return {{"error", conventions.error().message}};
    if (!conventions->runs_on_host())
      return {{"result", to_json(evaluate_on_device(it->second, request, options, seed))}};
    EvalResult result = run_sandboxed(it->second, request.at("reference"), request.at("baseline"),
                                      request.at("candidate"), options, seed);
    // Here, outside the child that ran the candidate: what it reported is checked against physics.
    if (const std::string probe = request.value("probe", ""); !probe.empty() && result.status == EvalStatus::ok) {
      // The floor from the best the probe ever saw, the roofline from its latest run.
      if (auto limits = probe_limits(probe)) {
        EvalResult checked = result;
        apply_physics(it->second, limits->best, checked, host_roofline(limits->latest));
        // Before calling a kernel faster than physics, measure the machine again: the saved
        // numbers may come from a busy moment (the best only ever grows).
        if (checked.status == EvalStatus::rejected_cheat)
          if (auto again = probe_limits(probe, true)) {
            checked = result;
            apply_physics(it->second, again->best, checked, host_roofline(again->latest));
          }
        result = std::move(checked);
      } else {
        fmt::print(stderr, "kforge worker: no physics floor: {}\n", limits.error().message);
      }
    }
    return {{"result", to_json(result)}};
  } catch (const nlohmann::json::exception& e) {
    return {{"error", fmt::format("malformed {}request: {}", type.empty() ? "" : type + " ", e.what())}};
  }
}

}  // namespace kforge
