#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiler_bridge/backends.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

std::string host_cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      size_t start = line.find_first_not_of(" \t", line.find(':') + 1);
      return start == std::string::npos ? "unknown cpu" : line.substr(start);
    }
  return "unknown cpu";
}

Result<HostCompiler> HostCompiler::create(HostCompilerOptions options) {
  if (options.compiler.empty()) {
    const char* cxx = getenv("CXX");
    options.compiler = cxx && *cxx ? cxx : "g++";
  }
  auto cache = CompileCache::open(options.cache_dir);
  if (!cache) return cache.error();

  auto version = run_process({options.compiler, "--version"}, "", 30);
  if (!version || version->exit_code != 0)
    return make_error(ErrorKind::invalid_input, "host compiler '{}' does not run: {}", options.compiler,
                      version ? first_line(version->output) : version.error().message);
  HostCompiler compiler;
  compiler.options_ = std::move(options);
  compiler.cache_.emplace(std::move(*cache));
  compiler.version_ = first_line(version->output);
  compiler.host_cpu_ = host_cpu_name();
  return compiler;
}

std::vector<std::string> HostCompiler::flags() const {
  return {"-std=c++17", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
          // Every symbol must resolve at link time, so a missing entry is a compile error
          // rather than a dlopen failure later.
          "-Wl,-z,defs"};
}

std::string HostCompiler::cache_key(const CompileRequest& request) const {
  std::string material = "cpu\n" + options_.compiler + "\n" + version_ + "\n" + host_cpu_ + "\n";
  for (const auto& flag : flags()) material += flag + " ";
  for (const auto& [name, value] : request.defines) material += fmt::format("-D{}={} ", name, value);
  for (const auto& library : request.libraries) material += "-l" + library + " ";
  material += "\n" + request.file_name + "\n" + request.source;
  return content_hash(material);
}

Result<Binary> HostCompiler::compile(const CompileRequest& request) const {
  auto binary =
      cache_->get_or_build("cpu", cache_key(request), "so", [&](const std::string& output) -> Result<std::string> {
        const fs::path scratch = fs::path(output).parent_path();
        // The compiler picks the language by extension: whatever the kernel file is called, compile
        // it as C++ under its own name, so the log still points at it.
        std::string file_name = fs::path(request.file_name).filename().string();
        const std::string extension = fs::path(file_name).extension().string();
        if (extension != ".cpp" && extension != ".cc" && extension != ".cxx") file_name += ".cpp";
        if (auto s = write_file(scratch / file_name, request.source); !s) return s.error();

        std::vector<std::string> argv = {options_.compiler};
        for (const auto& flag : flags()) argv.push_back(flag);
        for (const auto& [name, value] : request.defines) argv.push_back(fmt::format("-D{}={}", name, value));
        argv.insert(argv.end(), {"./" + file_name, "-o", output});
        for (const auto& library : request.libraries) argv.push_back("-l" + library);

        auto run = run_process(argv, scratch.string(), options_.timeout_s);
        if (!run) return run.error();
        if (run->timed_out)
          return make_error(ErrorKind::compile, "{}: compile timeout after {} s\n{}", file_name, options_.timeout_s,
                            run->output);
        if (run->exit_code != 0)
          return Error{ErrorKind::compile,
                       run->output.empty() ? fmt::format("{} failed with no output", argv[0]) : run->output};
        return run->output;
      });
  if (binary) binary->arch = "native";
  return binary;
}

Result<SharedLibrary> SharedLibrary::open(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return make_error(ErrorKind::io, "dlopen: {}", dlerror());
  return SharedLibrary(handle);
}

Result<void*> SharedLibrary::symbol(const std::string& name) const {
  dlerror();
  void* address = dlsym(handle_, name.c_str());
  if (!address) return make_error(ErrorKind::invalid_input, "symbol '{}' not found: {}", name, dlerror());
  return address;
}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_) dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

SharedLibrary::~SharedLibrary() {
  if (handle_) dlclose(handle_);
}

}  // namespace kforge

namespace kforge {
namespace {

// The host as a backend: the host compiler, and the machine's CPU as the one device.
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(HostCompilerOptions options)
      : Backend(CompileCache::at(options.cache_dir)), compiler_(HostCompiler::create(options)) {}

  std::string name() const override { return "cpu"; }
  Status compiler_status() const override {
    if (!compiler_) return compiler_.error();
    return {};
  }
  std::string compiler_version() const override { return compiler_ ? compiler_->version() : "(no host compiler)"; }
  std::string default_arch() const override { return "native"; }
  Result<Binary> compile(const CompileRequest& request) const override {
    if (!compiler_) return compiler_.error();
    if (!request.arch.empty() && request.arch != "native")
      return make_error(ErrorKind::invalid_input,
                        "cpu: --arch {}: the cpu backend compiles for this host only (-march=native)", request.arch);
    return compiler_->compile(request);
  }
  Result<std::vector<DeviceInfo>> devices() const override {
    DeviceInfo info;
    info.backend = "cpu";
    info.name = host_cpu_name();
    info.arch = "native";
    info.compute_units = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    info.memory_bytes = static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    info.l2_bytes = std::max(0L, sysconf(_SC_LEVEL2_CACHE_SIZE));
    return std::vector<DeviceInfo>{info};
  }

 private:
  Result<HostCompiler> compiler_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CompileCache& cache) {
  return make_host_backend({.compiler = "", .cache_dir = cache.dir()});
}

std::unique_ptr<Backend> make_host_backend(HostCompilerOptions options) {
  if (options.cache_dir.empty()) options.cache_dir = default_cache_dir();
  return std::make_unique<CpuBackend>(std::move(options));
}

}  // namespace kforge
