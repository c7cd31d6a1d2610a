#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "compiler_bridge/backends.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

// `ask()`'s answer to the question `key`, asked once per process: what a compiler says of its own
// flags does not change while we run.
std::string asked_once(const std::string& key, const std::function<std::string()>& ask) {
  static std::mutex mutex;
  static std::map<std::string, std::string> answers;
  std::lock_guard lock(mutex);
  auto it = answers.find(key);
  if (it == answers.end()) it = answers.emplace(key, ask()).first;
  return it->second;
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

std::string default_cpu_arch() {
  const char* arch = getenv("KFORGE_CPU_ARCH");
  return arch && *arch ? arch : "native";
}

Result<HostCompiler> HostCompiler::create(HostCompilerOptions options) {
  if (options.compiler.empty()) {
    const char* cxx = getenv("CXX");
    options.compiler = cxx && *cxx ? cxx : "g++";
  }
  if (options.arch.empty()) options.arch = default_cpu_arch();
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
  if (Status s = compiler.check_arch(compiler.options_.arch); !s) return s.error();
  return compiler;
}

Status HostCompiler::check_arch(const std::string& arch) const {
  if (arch == "native") return {};
  // Asked of the compiler: it knows its own -march values. Its error, empty if none.
  const std::string refusal = asked_once(options_.compiler + "\n-march=" + arch, [&]() -> std::string {
    auto run = run_process({options_.compiler, "-march=" + arch, "-x", "c++", "-fsyntax-only", "/dev/null"}, "", 30);
    if (!run) return run.error().message;
    if (run->exit_code != 0) return run->output.empty() ? "refused" : first_line(run->output);
    return "";
  });
  if (refusal.empty()) return {};
  return make_error(ErrorKind::invalid_input, "cpu: arch {}: {} refuses -march={}: {}", arch, options_.compiler, arch,
                    refusal);
}

std::string HostCompiler::target() const {
  if (options_.arch != "native") return options_.arch;
  // What -march=native turns into here: the compiler's own -march and ISA switches (gcc's cc1
  // line; clang's -target-cpu and -target-feature), so two hosts whose CPUs differ only in a
  // masked extension (a VM's) differ too. Failing that, the CPU's model name.
  return asked_once(options_.compiler + "\ntarget", [&]() -> std::string {
    auto run = run_process(
        {options_.compiler, "-march=native", "-E", "-v", "-x", "c++", "/dev/null", "-o", "/dev/null"}, "", 30);
    if (!run || run->exit_code != 0) return "native:" + host_cpu_;
    std::istringstream lines(run->output);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("cc1") == std::string::npos) continue;
      std::istringstream words(line);
      std::string cpu, isa, word, previous;
      while (words >> word) {
        if (word.rfind("-march=", 0) == 0) cpu = word.substr(7);
        if (previous == "-target-cpu") cpu = word;
        if (word.rfind("-m", 0) == 0 || previous == "-target-feature") isa += word + " ";
        previous = word;
      }
      if (!cpu.empty()) return fmt::format("native:{}:{}", cpu, content_hash(isa).substr(0, 8));
    }
    return "native:" + host_cpu_;
  });
}

std::vector<std::string> HostCompiler::flags(const std::string& arch) const {
  return {"-std=c++17", "-O3", "-march=" + arch, "-fopenmp", "-shared", "-fPIC",
          // Every symbol must resolve at link time, so a missing entry is a compile error
          // rather than a dlopen failure later.
          "-Wl,-z,defs"};
}

std::string HostCompiler::cache_key(const CompileRequest& request) const {
  const std::string arch = request.arch.empty() ? options_.arch : request.arch;
  // -march=native is good for this CPU model only; another arch for any CPU that has its ISA.
  std::string material =
      "cpu\n" + options_.compiler + "\n" + version_ + "\n" + (arch == "native" ? host_cpu_ : "any cpu") + "\n";
  for (const auto& flag : flags(arch)) material += flag + " ";
  for (const auto& [name, value] : request.defines) material += fmt::format("-D{}={} ", name, value);
  for (const auto& library : request.libraries) material += "-l" + library + " ";
  material += "\n" + request.file_name + "\n" + request.source;
  return content_hash(material);
}

Result<Binary> HostCompiler::compile(const CompileRequest& request) const {
  const std::string arch = request.arch.empty() ? options_.arch : request.arch;
  if (Status s = check_arch(arch); !s) return s.error();
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
        for (const auto& flag : flags(arch)) argv.push_back(flag);
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
  if (binary) binary->arch = arch;
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
  std::string default_arch() const override { return compiler_ ? compiler_->arch() : default_cpu_arch(); }
  std::string target() const override { return compiler_ ? compiler_->target() : default_arch(); }
  Result<Binary> compile(const CompileRequest& request) const override {
    if (!compiler_) return compiler_.error();
    return compiler_->compile(request);
  }
  Result<std::vector<DeviceInfo>> devices() const override {
    DeviceInfo info;
    info.backend = "cpu";
    info.name = host_cpu_name();
    info.arch = default_arch();  // part of the device key unless native
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
