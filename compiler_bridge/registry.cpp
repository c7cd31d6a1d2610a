// The backend registry, the null backend, and stand-ins for backends this build left out.
#include "compiler_bridge/backends.hpp"

namespace kforge {
namespace {

// Compiles nothing and runs nothing: a backend for tests of the plumbing around backends.
class NullBackend final : public Backend {
 public:
  std::string name() const override { return "null"; }
  Status compiler_status() const override { return {}; }
  std::string compiler_version() const override { return "null 0"; }
  std::string default_arch() const override { return "none"; }
  Result<Binary> compile(const CompileRequest& request) const override {
    return Binary{.backend = "null", .arch = "none", .format = "none", .key = content_hash(request.source)};
  }
  Result<std::vector<DeviceInfo>> devices() const override {
    return std::vector<DeviceInfo>{DeviceInfo{"null", 0, "null device", "none", 1, 0, 0, 0, 0, 1}};
  }
  Result<std::unique_ptr<Device>> open_device(int) const override {
    return make_error(ErrorKind::invalid_input, "null: no device to open (the null backend runs nothing)");
  }
};

// A backend compiled out of this build: it says so wherever it is asked.
class MissingBackend final : public Backend {
 public:
  MissingBackend(std::string name, std::string why) : name_(std::move(name)), why_(std::move(why)) {}
  std::string name() const override { return name_; }
  Status compiler_status() const override { return Error{ErrorKind::io, why_}; }
  std::string compiler_version() const override { return "(not built)"; }
  std::string default_arch() const override { return ""; }
  Result<Binary> compile(const CompileRequest&) const override { return Error{ErrorKind::io, why_}; }
  Result<std::vector<DeviceInfo>> devices() const override { return Error{ErrorKind::io, why_}; }
  Result<std::unique_ptr<Device>> open_device(int) const override { return Error{ErrorKind::io, name_ + ": " + why_}; }

 private:
  std::string name_, why_;
};

}  // namespace

std::string device_key(const DeviceInfo& info) {
  if (info.backend == "cpu") return "cpu:" + info.name;
  const std::string vendor = info.backend == "cuda" ? "nvidia" : info.backend == "hip" ? "amd" : info.backend;
  return fmt::format("{}:{}:{}", vendor, info.arch, info.compute_units);
}

Result<std::unique_ptr<Device>> Backend::open_device(int) const {
  return make_error(ErrorKind::invalid_input, "{}: no device to open (this backend's kernels run on the host)", name());
}

#ifndef KFORGE_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend(const CompileCache&) {
  return std::make_unique<MissingBackend>("cuda", "this kforge was built without the CUDA toolkit's headers");
}
#endif
#ifndef KFORGE_WITH_HIP
std::unique_ptr<Backend> make_hip_backend(const CompileCache&) {
  return std::make_unique<MissingBackend>("hip", "this kforge was built without the HIP headers (libamdhip64-dev)");
}
#endif

std::unique_ptr<Backend> make_null_backend() {
  return std::make_unique<NullBackend>();
}

std::vector<std::unique_ptr<Backend>> make_backends(const CompileCache& cache) {
  std::vector<std::unique_ptr<Backend>> all;
  all.push_back(make_cpu_backend(cache));
  all.push_back(make_cuda_backend(cache));
  all.push_back(make_hip_backend(cache));
  all.push_back(make_null_backend());
  return all;
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& name, const CompileCache& cache) {
  for (auto& backend : make_backends(cache))
    if (backend->name() == name) return std::move(backend);
  return make_error(ErrorKind::invalid_input, "unknown backend '{}' (known: cpu, cuda, hip, null)", name);
}

}  // namespace kforge
