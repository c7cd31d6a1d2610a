// The worker's side of one request, serve_request: "ping"; "validate" (reference_check.cpp); and
// "eval", which loads the task (once per worker) and runs the evaluation where its backend runs
// kernels: in a sandboxed child for native code (run_sandboxed, host_target.cpp), the reported
// times then checked against the machine's physics here, outside that child; or in the worker
// itself for a GPU (evaluate_on_device, on a device_target.cpp target). A request whose binaries
// come as what to compile ("compiles") is compiled here first (compile_requested).
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

// ---- compiles for a worker whose target differs from the coordinator's ----

// This worker's backend called `name`, opened once, over its own compile cache.
Result<const Backend*> own_backend(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Backend>> opened;
  if (auto it = opened.find(name); it != opened.end()) return it->second.get();
  auto cache = CompileCache::open();
  if (!cache) return cache.error();
  auto backend = make_backend(name, *cache);
  if (!backend) return backend.error();
  return opened.emplace(name, std::move(*backend)).first->second.get();
}

// Compiles one {"compile": SPEC} of a request (evaluator.md says what SPEC holds) for this worker.
Result<Binary> compile_here(const nlohmann::json& spec) {
  auto backend = own_backend(spec.at("backend"));
  if (!backend) return backend.error();
  const std::string builtin = spec.value("builtin", "");
  if (builtin == "probe") return compile_probe(**backend);
  if (builtin == "copy_probe") return compile_copy_probe(**backend);
  if (!builtin.empty()) return make_error(ErrorKind::invalid_input, "no built-in binary '{}'", builtin);
  CompileRequest request;
  request.source = spec.at("source");
  request.file_name = spec.at("file_name");
  for (const auto& [name, value] : spec.at("defines").items()) request.defines[name] = integer<std::int64_t>(value);
  request.libraries = spec.at("libraries").get<std::vector<std::string>>();
  request.arch = spec.value("arch", "");
  return (*backend)->compile(request);
}

// Replaces every value that the request's "compiles" points at by the binary compiled here, as a
// request names binaries: a host binary by its path, a GPU binary as {"path", "format", "arch"}.
// What to answer instead, if anything: a candidate that does not compile is a result (its
// compile_error), anything else that does not an error. `candidate`: the candidate's binary.
std::optional<nlohmann::json> compile_requested(nlohmann::json& request, std::optional<Binary>& candidate) {
  for (const auto& pointer : request.at("compiles")) {
    const nlohmann::json::json_pointer at(pointer.get<std::string>());
    const nlohmann::json spec = request.at(at).at("compile");
    auto binary = compile_here(spec);
    const bool is_candidate = pointer.get<std::string>().rfind("/candidate", 0) == 0;
    if (!binary && is_candidate) {
      EvalResult result;
      result.seed = integer<std::uint64_t>(request.at("seed"));
      result.status = binary.error().kind == ErrorKind::compile ? EvalStatus::compile_error : EvalStatus::runtime_error;
      result.log = binary.error().message;
      result.message = first_error_line(result.log);
      return nlohmann::json{{"result", to_json(result)}};
    }
    if (!binary) {
      const std::string what = spec.value("file_name", spec.value("builtin", ""));
      return nlohmann::json{{"error", fmt::format("compiling {} here: {}", what, first_error_line(binary.error().message))}};
    }
    auto backend = own_backend(spec.at("backend"));
    if ((*backend)->conventions().runs_on_host())
      request[at] = binary->path;
    else
      request[at] = {{"path", binary->path}, {"format", binary->format}, {"arch", binary->arch}};
    if (is_candidate) candidate = std::move(*binary);
  }
  return std::nullopt;
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
      answer["target"] = compile_target(**opened);  // a coordinator with another compiles nothing for us
    }
  }
  return answer;
}

// The answer to a request whose binaries are all at hand.
nlohmann::json serve_compiled(const nlohmann::json& request) {
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

}  // namespace

nlohmann::json serve_request(const nlohmann::json& request) {
  if (!request.is_object() || !request.contains("compiles")) return serve_compiled(request);
  nlohmann::json compiled = request;
  std::optional<Binary> candidate;
  try {
    if (auto answer = compile_requested(compiled, candidate)) return *answer;
  } catch (const nlohmann::json::exception& e) {
    return {{"error", fmt::format("malformed compile request: {}", e.what())}};
  }
  nlohmann::json answer = serve_compiled(compiled);
  // What the compiler said, from this process's compile: the child that ran the kernel cannot forge it.
  if (candidate && answer.contains("result"))
    if (auto result = eval_result_from_json(answer["result"])) {
      result->log = candidate->log;
      result->usage = candidate->usage;
      result->code_bytes = candidate->size_bytes;
      answer["result"] = to_json(*result);
    }
  return answer;
}

}  // namespace kforge
