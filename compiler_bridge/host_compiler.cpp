#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiler_bridge/compiler_bridge.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

Status write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return make_error(ErrorKind::io, "{}: cannot write", path.string());
  return {};
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

std::string default_cache_dir() {
  if (const char* dir = getenv("KFORGE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/kforge";
  if (const char* home = getenv("HOME"); home && *home) return std::string(home) + "/.cache/kforge";
  return "/tmp/kforge-cache";
}

Result<HostCompiler> HostCompiler::create(HostCompilerOptions options) {
  if (options.compiler.empty()) {
    const char* cxx = getenv("CXX");
    options.compiler = cxx && *cxx ? cxx : "g++";
  }
  if (options.cache_dir.empty()) options.cache_dir = default_cache_dir();
  std::error_code ec;
  fs::create_directories(fs::path(options.cache_dir) / "cpu", ec);
  fs::create_directories(fs::path(options.cache_dir) / "tmp", ec);
  if (ec || access((options.cache_dir + "/tmp").c_str(), W_OK) != 0)
    return make_error(ErrorKind::io, "compile cache {}: not writable (set KFORGE_CACHE_DIR)", options.cache_dir);

  auto version = run_process({options.compiler, "--version"}, "", 30);
  if (!version || version->exit_code != 0)
    return make_error(ErrorKind::invalid_input, "host compiler '{}' does not run: {}", options.compiler,
                      version ? first_line(version->output) : version.error().message);
  HostCompiler compiler;
  compiler.options_ = std::move(options);
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
  material += "\n" + request.file_name + "\n" + request.source;
  return content_hash(material);
}

Result<Binary> HostCompiler::compile(const CompileRequest& request) const {
  Binary binary;
  binary.key = cache_key(request);
  binary.path = fmt::format("{}/cpu/{}.so", options_.cache_dir, binary.key);
  if (fs::exists(binary.path)) {
    binary.cache_hit = true;
    return binary;
  }

  std::string scratch_template = options_.cache_dir + "/tmp/build-XXXXXX";
  if (!mkdtemp(scratch_template.data()))
    return make_error(ErrorKind::io, "{}: cannot make a scratch directory", scratch_template);
  const fs::path scratch = scratch_template;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{scratch};

  // The compiler picks the language by extension: whatever the kernel file is called, compile
  // it as C++ under its own name, so the log still points at it.
  std::string file_name = fs::path(request.file_name).filename().string();
  const std::string extension = fs::path(file_name).extension().string();
  if (extension != ".cpp" && extension != ".cc" && extension != ".cxx") file_name += ".cpp";
  if (auto s = write_file(scratch / file_name, request.source); !s) return s.error();

  std::vector<std::string> argv = {options_.compiler};
  for (const auto& flag : flags()) argv.push_back(flag);
  for (const auto& [name, value] : request.defines) argv.push_back(fmt::format("-D{}={}", name, value));
  argv.insert(argv.end(), {"./" + file_name, "-o", "kforge-output.so"});

  auto run = run_process(argv, scratch.string(), options_.timeout_s);
  if (!run) return run.error();
  if (run->timed_out)
    return make_error(ErrorKind::compile, "{}: compile timeout after {} s\n{}", file_name, options_.timeout_s,
                      run->output);
  if (run->exit_code != 0) {
    std::string log = run->output.empty() ? fmt::format("{} failed with no output", argv[0]) : run->output;
    return Error{ErrorKind::compile, log};
  }
  binary.log = run->output;
  // rename() is atomic: a concurrent compile of the same key leaves one complete file.
  std::error_code ec;
  fs::rename(scratch / "kforge-output.so", binary.path, ec);
  if (ec) return make_error(ErrorKind::io, "{}: cannot store in cache: {}", binary.path, ec.message());
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
