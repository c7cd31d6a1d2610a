// compiler_bridge: turns a kernel source into something runnable, and nothing more.
//
// It reads the candidate file format (the `// @kforge` header lines that say which function is
// the entry, which tunable params exist and how the kernel is launched), compiles sources with a
// backend's compiler into a binary cached on disk by content hash, and loads and runs binaries. It
// knows nothing of tasks or correctness: the evaluator above decides what to compile, run and time.
// Backends: `cpu` (the host C++ compiler, `$CXX` or g++, to a shared object), `cuda` (NVRTC to
// CUBIN or PTX), `hip` (hiprtc to a code object), and `null` (compiles nothing, for plumbing
// tests). One compile cache on disk serves them all. The GPU backends also open devices: memory,
// copies, module loading, launches on a stream and event timing, through the vendors' driver APIs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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

// ---- binaries and the shared compile cache ----------------------------------------------------

// What a GPU compiler reports about a kernel's resources; -1 where unknown (or not applicable).
struct ResourceUsage {
  int registers = -1;     // per thread
  int spill_bytes = -1;   // spill stores + loads
  int shared_bytes = -1;  // static shared memory per block
};

struct CompileRequest {
  std::string source;
  std::string file_name = "kernel.cpp";  // how the compiler log refers to the source
  Bindings defines;                      // -DNAME=value
  std::string arch;                      // target: sm_90, gfx90a, ...; empty: the backend's default
  std::vector<std::string> libraries = {};  // cpu: linked as -lNAME (vendor baselines, never candidates)
};

struct Binary {
  std::string backend = {};  // "cpu", "cuda", "hip"
  std::string arch = {};     // what it was compiled for ("native" on the cpu)
  std::string format = {};   // "so", "cubin", "ptx", "hsaco"
  std::string path = {};     // the file, inside the compile cache
  std::string key = {};      // content hash of everything that shaped the binary
  std::string log = {};      // compiler output (warnings, resource usage)
  bool cache_hit = false;
  ResourceUsage usage = {};
  std::int64_t size_bytes = 0;
};

// What a binary does, without what merely names it: a hash of its code and data. An ELF file (a
// shared object, a cubin, an hsaco) hashes every section with its name, except the symbol and
// string tables, the build id, the compiler's comment and debug info, which carry the source
// file's name, local names or a hash of the whole file; PTX hashes its text without comments. Two
// binaries with one code hash run the same code, so a search evaluates only one of them.
Result<std::string> code_hash(const Binary& binary);

// Compiled binaries on disk, shared by every backend and by concurrent kforge processes:
// <dir>/<backend>/<key>.<ext> plus <key>.log; files appear by atomic rename only.
class CompileCache {
 public:
  // `dir` empty: default_cache_dir(). Creates the directory; an error if it cannot be written.
  static Result<CompileCache> open(std::string dir = "");
  // The cache at `dir` as it is, neither created nor checked: for commands that compile nothing.
  static CompileCache at(std::string dir = "");

  // What a compiler does on a cache miss: writes the binary to `output_path` (in a fresh scratch
  // directory it may also use, removed afterwards) and returns its log.
  using BuildFn = std::function<Result<std::string>(const std::string& output_path)>;
  // The binary cached under `key`, else the one `build` makes, stored with its log; a `build`
  // error comes back as it is and caches nothing. The caller fills in arch and usage.
  Result<Binary> get_or_build(const std::string& backend, const std::string& key, const std::string& format,
                              const BuildFn& build) const;

  struct Usage {
    std::int64_t files = 0, bytes = 0;
  };
  std::map<std::string, Usage> usage() const;  // per backend
  Status clear() const;
  const std::string& dir() const { return dir_; }

 private:
  std::optional<Binary> lookup(const std::string& backend, const std::string& key, const std::string& format) const;
  Result<std::string> make_scratch_dir() const;
  std::string dir_;
};

// ---- backends ---------------------------------------------------------------------------------

struct DeviceInfo {
  std::string backend;    // "cuda"
  int index = 0;          // within the backend
  std::string name;       // "NVIDIA H200"
  std::string arch;       // "sm_90", "gfx90a", "native"
  int compute_units = 0;  // SMs / CUs / cores
  std::int64_t memory_bytes = 0;
  std::int64_t l2_bytes = 0;
  int clock_khz = 0, memory_clock_khz = 0;
  int memory_bus_bits = 0;  // with memory_clock_khz: the peak memory bandwidth
  int warp_size = 0;
};

// The key a kernel library files the device's kernels under: "cpu:<model name>" for the cpu
// (compiled with -march=native; "cpu:<model name>:<arch>" for another -march, so kernels built for
// different ISAs never compete), "<vendor>:<arch>:<units>" for a GPU ("nvidia:sm_90:132",
// "amd:gfx942:304"); its lookup parses vendor, arch and unit count from it.
std::string device_key(const DeviceInfo& info);

// ---- running on a device ----------------------------------------------------------------------

using DevicePtr = std::uint64_t;  // a device address (CUdeviceptr / hipDeviceptr_t); 0 is null

// One launch's shape: grid and block extents per dimension, and dynamic shared memory in bytes.
struct LaunchDims {
  unsigned grid[3] = {1, 1, 1};
  unsigned block[3] = {1, 1, 1};
  unsigned shared_bytes = 0;
};

// Evaluates one `@kforge launch` line under `bindings` (task sizes + params); an extent that is not
// positive or does not fit the hardware limits (block > 1024 threads, grid.y/z > 65535) is an invalid_input error
// naming it.
Result<LaunchDims> evaluate_launch(const LaunchSpec& spec, const Bindings& bindings);

class Module {  // a loaded code object; unloaded on destruction
 public:
  virtual ~Module() = default;
};

class Event {  // a timing event; destroyed with the object
 public:
  virtual ~Event() = default;
};

// One GPU with its own context and a harness-owned stream; not thread-safe, but any one thread
// at a time may call it. Every error names the driver's error and what was being done.
class Device {
 public:
  virtual ~Device() = default;
  // What the device is (as Backend::devices() lists it).
  virtual const DeviceInfo& info() const = 0;
  // `bytes` of device memory, uninitialised.
  virtual Result<DevicePtr> alloc(std::size_t bytes) = 0;
  // Frees what alloc returned; 0 is ignored.
  virtual void free(DevicePtr ptr) = 0;
  // Host to device, after the stream's earlier work; returns when done.
  virtual Status copy_in(DevicePtr dst, const void* src, std::size_t bytes) = 0;
  // Device to host, after the stream's earlier work; returns when done.
  virtual Status copy_out(void* dst, DevicePtr src, std::size_t bytes) = 0;
  // Sets `bytes` bytes at `dst` to `byte`, on the stream.
  virtual Status fill(DevicePtr dst, std::uint8_t byte, std::size_t bytes) = 0;
  // Loads a binary this backend compiled (cubin or ptx, hsaco).
  virtual Result<std::unique_ptr<Module>> load(const Binary& binary) = 0;
  // Enqueues `entry` of `module` on the stream; args[i] points at the i-th kernel argument's value.
  virtual Status launch(const Module& module, const std::string& entry, const LaunchDims& dims, void** args) = 0;
  // Waits for the stream; reports asynchronous errors (an illegal address surfaces here).
  virtual Status synchronize() = 0;
  // A timing event.
  virtual Result<std::unique_ptr<Event>> create_event() = 0;
  // Records `event` on the stream.
  virtual Status record(Event& event) = 0;
  // Milliseconds between two recorded events; waits for `end`.
  virtual Result<double> elapsed_ms(const Event& start, const Event& end) = 0;
  // Writes a buffer of 2x L2 and resets persisting L2 lines, on the stream: the next launch starts cold.
  virtual Status flush_l2() = 0;
  // A sticky error (illegal address, ...) was seen: the context is unusable, restart the process.
  virtual bool dead() const = 0;
  // The stream everything above is enqueued on (CUstream, hipStream_t), for a vendor library
  // (a task's cuBLAS baseline) to enqueue on too, so the same events time it.
  virtual void* native_stream() const = 0;
};

// What differs between the kernels of backends: asked of the backend (or, with only its name at
// hand, of kernel_conventions()) rather than switched on the name.
struct KernelConventions {
  // cpu: `extern "C" void entry(...)`, run in the calling process through a trampoline;
  // cuda, hip: `extern "C" __global__ void entry(...)`, launched on a device.
  enum class Entry { host_function, device_kernel } entry = Entry::host_function;
  std::string extension;                   // of a kernel file: ".cpp", ".cu", ".hip"
  std::vector<std::string> seed_prefixes;  // its seeds' names: "cpu_"; "cuda_"; "hip_" and "cuda_"
  std::string baseline_seed;               // the naive seed speedups count from: "cpu_naive.cpp", "cuda_naive.cu"
  std::string vendor;                      // how device keys name its devices: "cpu", "nvidia", "amd"

  bool runs_on_host() const { return entry == Entry::host_function; }
  // Whether `file_name` (a seed's) is a kernel of this backend.
  bool is_seed(const std::string& file_name) const;
};

// The conventions of the backend called `backend` ("cpu", "cuda", "hip", "null"); an unknown
// name is an error listing the known ones.
Result<KernelConventions> kernel_conventions(const std::string& backend);

// One backend: a compiler (source -> binary, pure and cached) and the devices it can run on. Each
// backend lives in one file pair; vendor libraries are dlopen'ed, so a missing one makes the
// backend unavailable with a reason instead of stopping kforge from starting.
class Backend {
 public:
  explicit Backend(CompileCache cache) : cache_(std::move(cache)) {}
  virtual ~Backend() = default;
  // The compile cache it shares with every other backend of the process.
  const CompileCache& cache() const { return cache_; }
  // "cpu", "cuda", "hip", "null".
  virtual std::string name() const = 0;
  // Its kernels' entry style, file names and baseline (kernel_conventions(name())).
  const KernelConventions& conventions() const;
  // Whether this machine can compile for the backend; the error says what is missing.
  virtual Status compiler_status() const = 0;
  // The compiler and its version, e.g. "NVRTC 13.0".
  virtual std::string compiler_version() const = 0;
  // The arch compiled for when a request names none: the first device's, else a fixed default.
  virtual std::string default_arch() const = 0;
  // What a binary compiled for default_arch() asks of the machine that runs it: two backends of
  // one name with the same target run each other's binaries. Default: the arch (cpu: the ISA
  // that -march resolves to, HostCompiler::target()).
  virtual std::string target() const { return default_arch(); }
  // Source -> binary through the shared cache; a compiler error is ErrorKind::compile with the log.
  virtual Result<Binary> compile(const CompileRequest& request) const = 0;
  // The devices present; the error says why there are none ("libcuda.so.1 not found").
  virtual Result<std::vector<DeviceInfo>> devices() const = 0;
  // Device `index` of devices(), opened; default (cpu, null): an error saying there is none to open.
  virtual Result<std::unique_ptr<Device>> open_device(int index) const;

 private:
  CompileCache cache_;
};

// Every backend kforge knows, in a fixed order (cpu, cuda, hip, null), sharing `cache`.
std::vector<std::unique_ptr<Backend>> make_backends(const CompileCache& cache);
// One of them by name; an unknown name is an error listing the known ones.
Result<std::unique_ptr<Backend>> make_backend(const std::string& name, const CompileCache& cache);

// ---- the host C++ backend ---------------------------------------------------------------------

struct HostCompilerOptions {
  std::string compiler;    // empty: $CXX, else g++
  std::string arch = "";   // -march value; empty: $KFORGE_CPU_ARCH, else native
  std::string cache_dir;   // empty: default_cache_dir()
  double timeout_s = 120;  // a compile running longer is killed and reported
};

class HostCompiler {
 public:
  // Finds the compiler and its version, and opens the cache.
  static Result<HostCompiler> create(HostCompilerOptions options = {});

  // Compiles to a shared object with -O3 -march=ARCH -fopenmp -shared -fPIC (ARCH: the request's,
  // else the options'), or returns the cached one. A compiler error is an ErrorKind::compile Error
  // whose message is the full log; an arch the compiler does not know, one invalid_input line.
  Result<Binary> compile(const CompileRequest& request) const;

  std::string cache_key(const CompileRequest& request) const;
  const std::string& version() const { return version_; }
  // The -march value compiled for when a request names none ("native", "x86-64-v3").
  const std::string& arch() const { return options_.arch; }
  // What the default arch's binaries need of a CPU: "x86-64-v3" as given; for native, what the
  // compiler resolves it to here ("native:znver3:<hash of the enabled ISA extensions>").
  std::string target() const;
  // Whether the compiler takes -march=`arch`: its own error line when it does not.
  Status check_arch(const std::string& arch) const;

 private:
  HostCompilerOptions options_;
  std::optional<CompileCache> cache_;
  std::string version_;   // first line of `compiler --version`
  std::string host_cpu_;  // -march=native means the binary is only good for this CPU
  std::vector<std::string> flags(const std::string& arch) const;
};

// The cpu backend over a host compiler of `options` (make_backend("cpu", cache) takes the defaults).
std::unique_ptr<Backend> make_host_backend(HostCompilerOptions options = {});

// The host CPU's model name, e.g. "AMD EPYC 7B13".
std::string host_cpu_name();

// The cpu backend's arch when none is given: $KFORGE_CPU_ARCH, else "native".
std::string default_cpu_arch();

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
