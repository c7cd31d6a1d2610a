// The backend registry, the null backend, and stand-ins for backends this build left out.
#include "compiler_bridge/backends.hpp"

#include <stdexcept>

namespace kforge {
namespace {

// Compiles nothing and runs nothing: a backend for tests of the plumbing around backends.
class NullBackend final : public Backend {
 public:
  using Backend::Backend;
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
  MissingBackend(const CompileCache& cache, std::string name, std::string why)
      : Backend(cache), name_(std::move(name)), why_(std::move(why)) {}
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

using Entry = KernelConventions::Entry;
// The one place that knows each backend: its name, its kernels' conventions and its factory. HIP
// compiles CUDA kernels through its prelude, so CUDA seeds are HIP's too, and it measures
// speedups against the CUDA naive seed.
struct Registered {
  std::string name;
  KernelConventions conventions;
  std::unique_ptr<Backend> (*make)(const CompileCache& cache);
};
const std::vector<Registered>& registry() {
  static const std::vector<Registered> table = {
      {"cpu", {Entry::host_function, ".cpp", {"cpu_"}, "cpu_naive.cpp", "cpu"}, make_cpu_backend},
      {"cuda", {Entry::device_kernel, ".cu", {"cuda_"}, "cuda_naive.cu", "nvidia"}, make_cuda_backend},
      {"hip", {Entry::device_kernel, ".hip", {"hip_", "cuda_"}, "cuda_naive.cu", "amd"}, make_hip_backend},
      {"null", {Entry::host_function, ".null", {}, "", "null"}, make_null_backend},
  };
  return table;
}

Result<const Registered*> find_registered(const std::string& backend) {
  std::vector<std::string> known;
  for (const Registered& r : registry()) {
    if (r.name == backend) return &r;
    known.push_back(r.name);
  }
  return make_error(ErrorKind::invalid_input, "unknown backend '{}' (known: {})", backend, fmt::join(known, ", "));
}

}  // namespace

bool KernelConventions::is_seed(const std::string& file_name) const {
  for (const auto& prefix : seed_prefixes)
    if (file_name.rfind(prefix, 0) == 0 && file_name.size() > prefix.size()) return true;
  return false;
}

Result<KernelConventions> kernel_conventions(const std::string& backend) {
  auto registered = find_registered(backend);
  if (!registered) return registered.error();
  return (*registered)->conventions;
}

const KernelConventions& Backend::conventions() const {
  auto registered = find_registered(name());
  if (!registered) throw std::logic_error(registered.error().message);  // a backend missing from registry(): a bug
  return (*registered)->conventions;
}

std::string device_key(const DeviceInfo& info) {
  const auto conventions = kernel_conventions(info.backend);
  const std::string vendor = conventions ? conventions->vendor : info.backend;
  // Native keys stay as they were, so the libraries that hold them stay valid.
  if (vendor == "cpu") return "cpu:" + info.name + (info.arch.empty() || info.arch == "native" ? "" : ":" + info.arch);
  return fmt::format("{}:{}:{}", vendor, info.arch, info.compute_units);
}

Result<std::unique_ptr<Device>> Backend::open_device(int) const {
  return make_error(ErrorKind::invalid_input, "{}: no device to open (this backend's kernels run on the host)", name());
}

#ifndef KFORGE_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache) {
  return std::make_unique<MissingBackend>(cache, "cuda", "this kforge was built without the CUDA toolkit's headers");
}
#endif
#ifndef KFORGE_WITH_HIP
std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache) {
  return std::make_unique<MissingBackend>(cache, "hip", "this kforge was built without the HIP headers (libamdhip64-dev)");
}
#endif

std::unique_ptr<Backend> make_null_backend(const CompileCache& cache) {
  return std::make_unique<NullBackend>(cache);
}

std::vector<std::unique_ptr<Backend>> make_backends(const CompileCache& cache) {
  std::vector<std::unique_ptr<Backend>> all;
  for (const Registered& r : registry()) all.push_back(r.make(cache));
  return all;
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& name, const CompileCache& cache) {
  auto registered = find_registered(name);
  if (!registered) return registered.error();
  return (*registered)->make(cache);
}

}  // namespace kforge
