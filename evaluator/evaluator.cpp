// The Evaluator: compiles a task's reference, baseline and candidates on this side, then sends
// each evaluation to its worker and reads the result back (the protocol itself runs in the worker:
// harness.cpp, device_target.cpp).
#include <sys/random.h>

#include <filesystem>
#include <sstream>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// The run seed nobody sees beforehand: from the OS, never 0.
std::uint64_t secret_seed() {
  std::uint64_t seed = 0;
  while (seed == 0)
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
      seed = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  return seed;
}

// Where a request names files of this machine: the task folder and the binaries, host code by its
// path, a GPU kernel's in its description. A worker that ships files gets what they hold instead.
const std::vector<std::string> kRequestFiles = {
    "/task_dir", "/reference", "/probe", "/baseline", "/candidate", "/candidate/binary/path",
    "/baseline/binary/path", "/vendor_baseline/path", "/copy_probe/path"};

// The compiler's log, the kernel's resources and its size, into the result of its evaluation.
void note_binary(const Binary& binary, EvalResult& result) {
  result.log = binary.log;
  result.usage = binary.usage;
  result.code_bytes = binary.size_bytes;
}
}  // namespace


std::string to_string(EvalStatus status) {
  switch (status) {
    case EvalStatus::ok:
      return "ok";
    case EvalStatus::compile_error:
      return "compile_error";
    case EvalStatus::incorrect:
      return "incorrect";
    case EvalStatus::crash:
      return "crash";
    case EvalStatus::timeout:
      return "timeout";
    case EvalStatus::rejected_cheat:
      return "rejected_cheat";
    case EvalStatus::runtime_error:
      return "runtime_error";
  }
  return "runtime_error";
}

namespace {
// A kernel compiled for `backend`, as the worker's request names it: a host binary by its path; a
// GPU kernel by its source, file name and binary. What the compiler said goes to `result` when given.
Result<nlohmann::json> compile_for_worker(const Backend& backend, const Task& task, const Candidate& candidate,
                                          const std::string& file_name, EvalResult* result) {
  auto binary = compile_kernel(backend, task, candidate, file_name);
  if (!binary) return binary.error();
  if (result) note_binary(*binary, *result);
  if (backend.conventions().runs_on_host()) return nlohmann::json(binary->path);
  return nlohmann::json{{"source", candidate.source},
                        {"file_name", file_name},
                        {"binary", {{"path", binary->path}, {"format", binary->format}, {"arch", binary->arch}}}};
}

// What a worker that compiles for itself gets instead of a binary: the compile request, which it
// compiles with its own backend `backend` (serve.cpp, compile_requested).
nlohmann::json compile_spec(const std::string& backend, const CompileRequest& request) {
  nlohmann::json defines = nlohmann::json::object();
  for (const auto& [name, value] : request.defines) defines[name] = value;
  return {{"compile",
           {{"backend", backend},
            {"source", request.source},
            {"file_name", request.file_name},
            {"defines", defines},
            {"libraries", request.libraries},
            {"arch", request.arch}}}};
}

// `candidate` as a worker that compiles for itself gets it: as compile_for_worker() names it, with
// the compile request in place of the binary.
nlohmann::json compile_spec_for_worker(const Backend& backend, const Task& task, const Candidate& candidate,
                                       const std::string& file_name) {
  nlohmann::json spec = compile_spec(backend.name(), kernel_compile_request(backend, task, candidate, file_name));
  if (backend.conventions().runs_on_host()) return spec;
  return {{"source", candidate.source}, {"file_name", file_name}, {"binary", std::move(spec)}};
}

// The same for a binary the worker builds from its own sources: the machine probe, a GPU's copy probe.
nlohmann::json builtin_spec(const std::string& backend, const std::string& name) {
  return {{"compile", {{"backend", backend}, {"builtin", name}}}};
}

// The JSON pointers of the values of `j` that are compile specs, below `at`.
void find_compile_specs(const nlohmann::json& j, const std::string& at, nlohmann::json& pointers) {
  if (!j.is_object()) return;
  if (j.contains("compile") && j["compile"].is_object()) {
    pointers.push_back(at);
    return;
  }
  for (const auto& [key, value] : j.items())
    if (!at.empty() || key != "compiles") find_compile_specs(value, at + "/" + key, pointers);
}

// A file of the task's, parsed as a kernel.
Result<Candidate> read_kernel(const std::string& path) {
  auto source = read_file(path);
  if (!source) return source.error();
  return parse_candidate(std::move(*source), path);
}
}  // namespace

Result<Evaluator> Evaluator::create(Task task, const Backend& backend, std::shared_ptr<Worker> worker) {
  // The reference, the machine probe and a GPU's host-side baseline are host code, whatever the
  // candidates' backend.
  std::shared_ptr<const Backend> own_host;
  if (!backend.conventions().runs_on_host()) own_host = make_host_backend({.compiler = "", .cache_dir = backend.cache().dir()});
  const Backend& on_host = own_host ? *own_host : backend;
  auto reference = read_kernel(task.reference_path);
  if (!reference) return reference.error();
  auto binary = compile_kernel(on_host, task, *reference, "reference.cpp");
  if (!binary)
    return make_error(ErrorKind::invalid_input, "{}: the reference does not compile:\n{}", task.reference_path,
                      binary.error().message);
  auto probe = compile_probe(on_host);
  if (!probe) return make_error(ErrorKind::internal, "the machine probe does not compile:\n{}", probe.error().message);
  if (!worker) worker = std::make_shared<Worker>();
  Evaluator evaluator(std::move(task), backend, std::move(own_host), std::move(worker));
  evaluator.compiled_here_["reference"] = binary->path;
  evaluator.for_worker_compile_["reference"] =
      compile_spec(on_host.name(), kernel_compile_request(on_host, evaluator.task_, *reference, "reference.cpp"));
  if (backend.conventions().runs_on_host()) {
    evaluator.compiled_here_["probe"] = probe->path;
    evaluator.for_worker_compile_["probe"] = builtin_spec(on_host.name(), "probe");
  }
  Status baseline = backend.conventions().runs_on_host() ? evaluator.compile_host_baseline()
                                                         : evaluator.compile_device_baselines();
  if (!baseline) return baseline.error();
  return evaluator;
}

// The baseline every candidate's speedup is measured against, in the same child, interleaved:
// the task's vendor kernel where this machine can build it, else its naive seed.
Status Evaluator::compile_host_baseline() {
  const Task& t = task_;
  if (!t.cpu_baseline_path.empty()) {
    const std::string name = std::filesystem::path(t.cpu_baseline_path).filename().string();
    auto vendor = read_kernel(t.cpu_baseline_path);
    if (!vendor) return vendor.error();
    if (auto binary = compile_kernel(*backend_, t, *vendor, name, "", t.cpu_baseline_libraries)) {
      compiled_here_["baseline"] = binary->path;
      baseline_name_ = name;
      for_worker_compile_["baseline"] = compile_spec(
          backend_->name(), kernel_compile_request(*backend_, t, *vendor, name, "", t.cpu_baseline_libraries));
      return {};
    }
  }
  const std::string name = backend_->conventions().baseline_seed;
  const std::string baseline_path = t.dir + "/seeds/" + name;
  if (!std::filesystem::exists(baseline_path)) return {};
  auto baseline = read_kernel(baseline_path);
  if (!baseline) return baseline.error();
  auto binary = compile_kernel(*backend_, t, *baseline, name);
  if (!binary)
    return make_error(ErrorKind::invalid_input, "{}: the baseline does not compile:\n{}", baseline_path,
                      binary.error().message);
  compiled_here_["baseline"] = binary->path;
  baseline_name_ = name;
  for_worker_compile_["baseline"] =
      compile_spec(backend_->name(), kernel_compile_request(*backend_, t, *baseline, name));
  return {};
}

// A GPU's baselines: the task's naive GPU seed (HIP compiles the CUDA one through its prelude),
// the vendor's kernel where the worker can load its library (it says which baseline it timed),
// and the kernel that measures the device's bandwidth, for an honest % of roofline.
Status Evaluator::compile_device_baselines() {
  const Task& t = task_;
  const std::string name = backend_->conventions().baseline_seed;
  const std::string baseline_path = t.dir + "/seeds/" + name;
  if (std::filesystem::exists(baseline_path)) {
    auto baseline = read_kernel(baseline_path);
    if (!baseline) return baseline.error();
    auto described = compile_for_worker(*backend_, t, *baseline, name, nullptr);
    if (!described)
      return make_error(ErrorKind::invalid_input, "{}: the baseline does not compile for {}:\n{}", baseline_path,
                        backend_->name(), described.error().message);
    compiled_here_["baseline"] = *described;
    baseline_name_ = name;
    nlohmann::json remote = std::move(*described);
    remote["binary"] = compile_spec(backend_->name(), kernel_compile_request(*backend_, t, *baseline, name));
    for_worker_compile_["baseline"] = std::move(remote);
  }
  auto copy = compile_copy_probe(*backend_);
  if (!copy) return make_error(ErrorKind::internal, "the GPU bandwidth probe does not compile:\n{}", copy.error().message);
  compiled_here_["copy_probe"] = {{"path", copy->path}, {"format", copy->format}, {"arch", copy->arch}};
  for_worker_compile_["copy_probe"] = builtin_spec(backend_->name(), "copy_probe");
  // baseline.cuda calls cuBLAS on a CUstream: CUDA's alone.
  if (backend_->conventions().vendor == "nvidia" && !t.cuda_baseline_path.empty()) {
    auto binary = compile_gpu_host_baseline(host(), t);
    if (!binary)
      return make_error(ErrorKind::invalid_input, "{}: the baseline does not compile:\n{}", t.cuda_baseline_path,
                        binary.error().message);
    const std::string file_name = std::filesystem::path(t.cuda_baseline_path).filename().string();
    compiled_here_["vendor_baseline"] = {{"file_name", file_name}, {"path", binary->path}};
    auto request = gpu_host_baseline_request(t);
    if (!request) return request.error();
    for_worker_compile_["vendor_baseline"] = {{"file_name", file_name},
                                              {"path", compile_spec(host().name(), *request)}};
  }
  return {};
}

std::string compile_target(const Backend& backend) {
  if (backend.conventions().runs_on_host()) return backend.target();
  const auto host = make_host_backend({.compiler = "", .cache_dir = backend.cache().dir()});
  return fmt::format("{}, host {}", backend.target(), host->target());
}

Result<std::string> Evaluator::code_hash(const Candidate& candidate, const std::string& file_name) const {
  if (auto reason = source_check(*backend_, candidate.source)) return make_error(ErrorKind::invalid_input, "{}", *reason);
  auto binary = compile_kernel(*backend_, task_, candidate, file_name);
  if (!binary) return binary.error();
  return kforge::code_hash(*binary);
}

EvalResult Evaluator::evaluate(const Candidate& candidate, const std::string& file_name,
                               const EvalOptions& options) const {
  EvalResult result;
  result.seed = options.seed ? options.seed : secret_seed();
  if (auto reason = source_check(*backend_, candidate.source)) {
    result.status = EvalStatus::rejected_cheat;
    result.message = *reason;
    return result;
  }
  const bool on_host = backend_->conventions().runs_on_host();
  if (on_host && candidate.workspace_bytes) {
    result.status = EvalStatus::compile_error;
    result.message =
        "the cpu backend allocates no workspace: drop the '@kforge workspace' line and allocate "
        "scratch memory inside the kernel";
    return result;
  }
  nlohmann::json described;
  if (compile_on_worker_) {  // nothing compiled here: what it compiles for itself it reports itself
    described = compile_spec_for_worker(*backend_, task_, candidate, file_name);
  } else {
    auto compiled = compile_for_worker(*backend_, task_, candidate, file_name, &result);
    if (!compiled) {
      result.status = compiled.error().kind == ErrorKind::compile ? EvalStatus::compile_error : EvalStatus::runtime_error;
      result.log = compiled.error().message;
      result.message = first_error_line(result.log);
      return result;
    }
    described = std::move(*compiled);
  }
  return finish(eval_request(described, options, result.seed), result, options);
}

nlohmann::json Evaluator::eval_request(const nlohmann::json& candidate, const EvalOptions& options,
                                       std::uint64_t seed) const {
  nlohmann::json request = {{"type", "eval"},
                            {"task_dir", task_.dir},
                            {"options", to_json(options)},
                            {"seed", seed},
                            {"backend", backend_->name()},
                            {"candidate", candidate}};
  const bool on_host = backend_->conventions().runs_on_host();
  if (!on_host) request["device"] = 0;
  // Untimed, no baselines; the host worker reads its baseline as a path, "" for none.
  const bool timed = options.time_bench_shapes;
  for (const auto& [key, binary] : binaries().items())
    request[key] = timed || key == "reference" || key == "probe" ? binary : nlohmann::json();
  if (on_host && request["baseline"].is_null()) request["baseline"] = "";
  if (compile_on_worker_) {
    nlohmann::json pointers = nlohmann::json::array();
    find_compile_specs(request, "", pointers);
    request["compiles"] = pointers;
  }
  return request;
}

Status Evaluator::check_reference() const {
  nlohmann::json request = {{"type", "validate"}, {"task_dir", task_.dir}, {"reference", binaries().at("reference")}};
  if (compile_on_worker_) request["compiles"] = nlohmann::json::array({"/reference"});
  auto answer = worker_->call(request, 90, kRequestFiles);
  if (!answer) return answer.error();
  if (answer->contains("error"))
    return make_error(ErrorKind::internal, "validating the reference: {}", (*answer)["error"].get<std::string>());
  const std::string problem = answer->value("problem", "");
  if (!problem.empty()) return make_error(ErrorKind::invalid_input, "{}: {}", task_.reference_path, problem);
  return {};
}

EvalResult Evaluator::reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                               EvalOptions options) const {
  options.seed = 0;  // a fresh secret seed each time
  const int runs = first.speedup > 10 ? 2 : 1;
  EvalResult again;
  for (int run = 0; run < runs; ++run) {
    worker_->stop();  // a fresh worker: nothing of the first evaluation survives
    again = evaluate(candidate, file_name, options);
    if (again.status != EvalStatus::ok) {
      again.message = fmt::format("re-verification in a fresh worker failed: {}", again.message);
      return again;
    }
  }
  again.verified = true;
  return again;
}

EvalResult Evaluator::finish(const nlohmann::json& request, EvalResult result, const EvalOptions& options) const {
  // For native code the worker enforces options.timeout_s on its evaluation child, and this
  // deadline only catches a worker that stopped answering. A GPU kernel runs in the worker
  // itself: this deadline is its timeout, and the worker dies with the kernel.
  const bool in_worker = !backend_->conventions().runs_on_host();
  const double deadline_s = options.timeout_s + (in_worker ? 0 : 30);
  const auto start = Clock::now();
  auto answer = worker_->call(request, deadline_s, kRequestFiles);
  result.output = worker_->output();
  if (!answer) {
    const bool late = std::chrono::duration<double>(Clock::now() - start).count() >= deadline_s;
    const bool watchdog = in_worker && worker_->exit_code() == kWatchdogExit;
    result.status = late || watchdog ? EvalStatus::timeout : in_worker ? EvalStatus::crash : EvalStatus::runtime_error;
    result.message = watchdog ? kWatchdogMessage
                     : late && in_worker ? fmt::format("timeout after {:g} s", options.timeout_s)
                                         : answer.error().message;
    return result;
  }
  auto decoded = answer->contains("result") ? eval_result_from_json((*answer)["result"])
                                            : Result<EvalResult>(make_error(ErrorKind::internal, "no result"));
  if (!decoded) {
    result.status = EvalStatus::runtime_error;
    result.message = "worker: " + decoded.error().message;
    return result;
  }
  decoded->output = result.output;
  // What the compiler said, from this side's compile: nothing the kernel runs beside can forge it.
  // A worker that compiled for itself says it from its own compile, outside what ran the kernel.
  if (!compile_on_worker_) {
    decoded->log = result.log;
    decoded->usage = result.usage;
    decoded->code_bytes = result.code_bytes;
  }
  // A GPU worker names the baseline it timed (the vendor's, or the naive seed and why).
  if (decoded->speedup > 0 && decoded->baseline.empty()) decoded->baseline = baseline_name_;
  return *decoded;
}

}  // namespace kforge
