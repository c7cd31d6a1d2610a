// compiler_bridge: turns a kernel source into something runnable, and nothing more.
//
// It reads the candidate file format (the `// @kforge` header lines that say which function is
// the entry, which tunable params exist and how the kernel is launched), compiles sources with a
// backend's compiler into a binary cached on disk by content hash, and loads binaries. It knows
// nothing of tasks, correctness or timing: the evaluator above decides what to compile and why.
// Backends today: `cpu`, the host C++ compiler (`$CXX` or g++) producing a shared object.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "common/expr.hpp"

namespace kforge {

// ---- the candidate file format (tasks/README.md, "Kernel contract") -------------------------

// `// @kforge param: BLOCK=256 in {64,128,256}`: a tunable integer, passed as -DBLOCK=256.
struct KernelParam {
  std::string name;
  std::int64_t value = 0;
  std::vector<std::int64_t> choices;  // empty: any value
};

// `// @kforge launch: grid=(ceil_div(N,BLOCK)) block=(BLOCK) smem=BLOCK*4` (GPU backends).
struct LaunchSpec {
  std::vector<Expr> grid;
  std::vector<Expr> block;
  std::optional<Expr> shared_bytes;
};

struct Candidate {
  std::string source;
  std::string entry;  // the extern "C" function the harness calls
  std::string about;  // one line: what this variant does differently
  std::vector<KernelParam> params;
  std::vector<LaunchSpec> launches;  // run in order
  std::optional<Expr> workspace_bytes;

  // The params as -D values (name -> value).
  Bindings param_bindings() const;
};

// Parses the header lines of `source`. `origin` (a file name) starts every error message.
Result<Candidate> parse_candidate(std::string source, const std::string& origin);

// ---- the host C++ backend -------------------------------------------------------------------

struct CompileRequest {
  std::string source;
  std::string file_name = "kernel.cpp";  // how the compiler log refers to the source
  Bindings defines;                      // -DNAME=value
};

struct Binary {
  std::string path;  // the shared object, inside the compile cache
  std::string key;   // content hash of everything that shaped the binary
  std::string log;   // compiler output (warnings), empty when it was a cache hit
  bool cache_hit = false;
};

struct HostCompilerOptions {
  std::string compiler;    // empty: $CXX, else g++
  std::string cache_dir;   // empty: default_cache_dir()
  double timeout_s = 120;  // a compile running longer is killed and reported
};

class HostCompiler {
 public:
  // Finds the compiler and its version, and makes the cache directory.
  static Result<HostCompiler> create(HostCompilerOptions options = {});

  // Compiles to a shared object with -O3 -march=native -fopenmp -shared -fPIC, or returns the
  // cached one. A compiler error is an ErrorKind::compile Error whose message is the full log.
  Result<Binary> compile(const CompileRequest& request) const;

  std::string cache_key(const CompileRequest& request) const;
  const std::string& cache_dir() const { return options_.cache_dir; }
  const std::string& version() const { return version_; }

 private:
  HostCompilerOptions options_;
  std::string version_;   // first line of `compiler --version`
  std::string host_cpu_;  // -march=native means the binary is only good for this CPU
  std::vector<std::string> flags() const;
};

// The host CPU's model name, e.g. "AMD EPYC 7B13".
std::string host_cpu_name();

// $KFORGE_CACHE_DIR, else $XDG_CACHE_HOME/kforge, else ~/.cache/kforge.
std::string default_cache_dir();

// A shared object opened with dlopen(RTLD_NOW | RTLD_LOCAL), closed on destruction.
class SharedLibrary {
 public:
  static Result<SharedLibrary> open(const std::string& path);
  Result<void*> symbol(const std::string& name) const;

  SharedLibrary(SharedLibrary&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  SharedLibrary& operator=(SharedLibrary&& other) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;
  ~SharedLibrary();

 private:
  explicit SharedLibrary(void* handle) : handle_(handle) {}
  void* handle_ = nullptr;
};

}  // namespace kforge
