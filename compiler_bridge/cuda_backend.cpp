// cuda: NVRTC compiles to CUBIN (sm_XX) or PTX (compute_XX); the driver API answers device
// queries and runs kernels (primary context, one non-blocking stream, events). Both libraries are
// dlopen'ed, so kforge starts and runs its CPU path without them.
#include <cuda.h>
#include <nvrtc.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>

#include "compiler_bridge/backends.hpp"

namespace kforge {
namespace {

// Where the toolkit lives: its headers are passed to every compile (fp16/bf16/fp8 need them).
std::string cuda_root() {
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var); v && *v) return v;
  return "/usr/local/cuda";
}

struct Nvrtc {
  SharedLibrary lib;
  decltype(&nvrtcVersion) version = nullptr;
  decltype(&nvrtcCreateProgram) create = nullptr;
  decltype(&nvrtcCompileProgram) compile = nullptr;
  decltype(&nvrtcGetProgramLogSize) log_size = nullptr;
  decltype(&nvrtcGetProgramLog) log = nullptr;
  decltype(&nvrtcGetCUBINSize) cubin_size = nullptr;
  decltype(&nvrtcGetCUBIN) cubin = nullptr;
  decltype(&nvrtcGetPTXSize) ptx_size = nullptr;
  decltype(&nvrtcGetPTX) ptx = nullptr;
  decltype(&nvrtcDestroyProgram) destroy = nullptr;
  decltype(&nvrtcGetErrorString) error_string = nullptr;
  int major = 0, minor = 0;
};

const Result<Nvrtc>& nvrtc() {
  static const Result<Nvrtc> loaded = []() -> Result<Nvrtc> {
    const std::string lib_dir = cuda_root() + "/lib64/";
    auto lib = open_first({"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", lib_dir + "libnvrtc.so.13",
                           lib_dir + "libnvrtc.so.12", lib_dir + "libnvrtc.so"});
    if (!lib) return lib.error();
    Nvrtc n{std::move(*lib)};
    for (Status s : {bind(n.lib, n.version, "nvrtcVersion"), bind(n.lib, n.create, "nvrtcCreateProgram"),
                     bind(n.lib, n.compile, "nvrtcCompileProgram"), bind(n.lib, n.log_size, "nvrtcGetProgramLogSize"),
                     bind(n.lib, n.log, "nvrtcGetProgramLog"), bind(n.lib, n.cubin_size, "nvrtcGetCUBINSize"),
                     bind(n.lib, n.cubin, "nvrtcGetCUBIN"), bind(n.lib, n.ptx_size, "nvrtcGetPTXSize"),
                     bind(n.lib, n.ptx, "nvrtcGetPTX"), bind(n.lib, n.destroy, "nvrtcDestroyProgram"),
                     bind(n.lib, n.error_string, "nvrtcGetErrorString")})
      if (!s) return s.error();
    n.version(&n.major, &n.minor);
    return n;
  }();
  return loaded;
}

// NVRTC: `request` to PTX or CUBIN, written to `output`; returns the log.
Result<std::string> nvrtc_compile(const CompileRequest& request, const std::vector<std::string>& options, bool ptx,
                                  const std::string& output) {
  const Nvrtc& n = *nvrtc();
  nvrtcProgram program = nullptr;
  if (nvrtcResult rc = n.create(&program, request.source.c_str(), request.file_name.c_str(), 0, nullptr, nullptr);
      rc != NVRTC_SUCCESS)
    return make_error(ErrorKind::internal, "nvrtcCreateProgram: {}", n.error_string(rc));
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  const nvrtcResult rc = n.compile(program, static_cast<int>(argv.size()), argv.data());
  size_t log_size = 0;
  n.log_size(program, &log_size);
  std::string log(log_size, '\0');
  if (log_size) n.log(program, log.data());
  while (!log.empty() && log.back() == '\0') log.pop_back();
  std::string bytes;
  if (rc == NVRTC_SUCCESS) {
    size_t size = 0;
    (ptx ? n.ptx_size : n.cubin_size)(program, &size);
    bytes.resize(size);
    (ptx ? n.ptx : n.cubin)(program, bytes.data());
    if (ptx)
      while (!bytes.empty() && bytes.back() == '\0') bytes.pop_back();
  }
  n.destroy(&program);
  if (rc != NVRTC_SUCCESS) return Error{ErrorKind::compile, log.empty() ? std::string(n.error_string(rc)) : log};
  if (auto s = write_file(output, bytes); !s) return s.error();
  return log;
}

struct Driver {
  SharedLibrary lib;
  decltype(&cuInit) init = nullptr;
  decltype(&cuDriverGetVersion) driver_version = nullptr;
  decltype(&cuDeviceGetCount) device_count = nullptr;
  decltype(&cuDeviceGet) device_get = nullptr;
  decltype(&cuDeviceGetName) device_name = nullptr;
  decltype(&cuDeviceGetAttribute) attribute = nullptr;
  decltype(&cuDeviceTotalMem) total_memory = nullptr;
  decltype(&cuGetErrorString) error_string = nullptr;
  decltype(&cuGetErrorName) error_name = nullptr;
  decltype(&cuDevicePrimaryCtxRetain) context_retain = nullptr;
  decltype(&cuDevicePrimaryCtxRelease) context_release = nullptr;
  decltype(&cuCtxSetCurrent) context_set_current = nullptr;
  decltype(&cuCtxResetPersistingL2Cache) reset_persisting_l2 = nullptr;
  decltype(&cuStreamCreate) stream_create = nullptr;
  decltype(&cuStreamDestroy) stream_destroy = nullptr;
  decltype(&cuStreamSynchronize) stream_synchronize = nullptr;
  decltype(&cuMemAlloc) memory_alloc = nullptr;
  decltype(&cuMemFree) memory_free = nullptr;
  decltype(&cuMemcpyHtoDAsync) copy_in = nullptr;
  decltype(&cuMemcpyDtoHAsync) copy_out = nullptr;
  decltype(&cuMemsetD8Async) fill = nullptr;
  decltype(&cuModuleLoadDataEx) module_load = nullptr;
  decltype(&cuModuleUnload) module_unload = nullptr;
  decltype(&cuModuleGetFunction) module_function = nullptr;
  decltype(&cuFuncSetAttribute) function_attribute = nullptr;
  decltype(&cuLaunchKernel) launch = nullptr;
  decltype(&cuEventCreate) event_create = nullptr;
  decltype(&cuEventDestroy) event_destroy = nullptr;
  decltype(&cuEventRecord) event_record = nullptr;
  decltype(&cuEventSynchronize) event_synchronize = nullptr;
  decltype(&cuEventElapsedTime) event_elapsed = nullptr;
};

// The driver, initialised; the error says why there is no usable one. Never unloaded: contexts,
// modules and events may outlive static destruction.
const Result<Driver>& driver() {
  static const Result<Driver>& loaded = *new Result<Driver>([]() -> Result<Driver> {
    auto lib = open_first({"libcuda.so.1"});
    if (!lib) return lib.error();
    Driver d{std::move(*lib)};
    // Versioned names (cuMemAlloc_v2, ...) are what cuda.h's macros call; dlsym needs them spelled out.
    for (Status s :
         {bind(d.lib, d.init, "cuInit"), bind(d.lib, d.driver_version, "cuDriverGetVersion"),
          bind(d.lib, d.device_count, "cuDeviceGetCount"), bind(d.lib, d.device_get, "cuDeviceGet"),
          bind(d.lib, d.device_name, "cuDeviceGetName"), bind(d.lib, d.attribute, "cuDeviceGetAttribute"),
          bind(d.lib, d.total_memory, "cuDeviceTotalMem_v2"), bind(d.lib, d.error_string, "cuGetErrorString"),
          bind(d.lib, d.error_name, "cuGetErrorName"), bind(d.lib, d.context_retain, "cuDevicePrimaryCtxRetain"),
          bind(d.lib, d.context_release, "cuDevicePrimaryCtxRelease_v2"),
          bind(d.lib, d.context_set_current, "cuCtxSetCurrent"),
          bind(d.lib, d.reset_persisting_l2, "cuCtxResetPersistingL2Cache"),
          bind(d.lib, d.stream_create, "cuStreamCreate"), bind(d.lib, d.stream_destroy, "cuStreamDestroy_v2"),
          bind(d.lib, d.stream_synchronize, "cuStreamSynchronize"), bind(d.lib, d.memory_alloc, "cuMemAlloc_v2"),
          bind(d.lib, d.memory_free, "cuMemFree_v2"), bind(d.lib, d.copy_in, "cuMemcpyHtoDAsync_v2"),
          bind(d.lib, d.copy_out, "cuMemcpyDtoHAsync_v2"), bind(d.lib, d.fill, "cuMemsetD8Async"),
          bind(d.lib, d.module_load, "cuModuleLoadDataEx"), bind(d.lib, d.module_unload, "cuModuleUnload"),
          bind(d.lib, d.module_function, "cuModuleGetFunction"),
          bind(d.lib, d.function_attribute, "cuFuncSetAttribute"), bind(d.lib, d.launch, "cuLaunchKernel"),
          bind(d.lib, d.event_create, "cuEventCreate"), bind(d.lib, d.event_destroy, "cuEventDestroy_v2"),
          bind(d.lib, d.event_record, "cuEventRecord"), bind(d.lib, d.event_synchronize, "cuEventSynchronize"),
          // _v2 since CUDA 12.8 (what CUDA 13's header calls), the same signature before.
          bind_first(d.lib, d.event_elapsed, {"cuEventElapsedTime_v2", "cuEventElapsedTime"})})
      if (!s) return s.error();
    if (CUresult rc = d.init(0); rc != CUDA_SUCCESS) {
      if (rc == CUDA_ERROR_STUB_LIBRARY)
        return make_error(ErrorKind::io, "libcuda.so.1 is the toolkit's stub, not a driver");
      const char* text = nullptr;
      d.error_string(rc, &text);
      return make_error(ErrorKind::io, "cuInit: {}", text ? text : std::to_string(rc));
    }
    return d;
  }());
  return loaded;
}

// "CUDA_ERROR_OUT_OF_MEMORY: out of memory"
std::string describe(const Driver& d, CUresult rc) {
  const char *name = nullptr, *text = nullptr;
  d.error_name(rc, &name);
  d.error_string(rc, &text);
  return fmt::format("{}: {}", name ? name : fmt::format("CUresult {}", static_cast<int>(rc)),
                     text ? text : "unknown error");
}

// Errors after which the context is unusable and every later call fails: the process must restart.
// Whether the context survives `rc`. Only errors known to leave it usable are recoverable; any
// other (illegal address, launch failure, ECC, "unknown" after an Xid...) marks it dead, so the
// worker is restarted rather than kept on a broken context.
bool is_sticky(CUresult rc) {
  switch (rc) {
    case CUDA_SUCCESS:
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_OUT_OF_MEMORY:
    case CUDA_ERROR_NOT_FOUND:
    case CUDA_ERROR_INVALID_IMAGE:
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
    case CUDA_ERROR_NOT_SUPPORTED:
    case CUDA_ERROR_NOT_READY:
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_SHARED_OBJECT_INIT_FAILED:
    case CUDA_ERROR_JIT_COMPILER_NOT_FOUND:
      return false;
    default:
      return true;
  }
}

int attribute(const Driver& d, CUdevice device, CUdevice_attribute which) {
  int value = 0;
  d.attribute(&value, which, device);
  return value;
}

// Resource usage from ptxas's verbose lines, the largest over the file's kernels:
//   ptxas . 0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
//   ptxas info : Used 10 registers, used 1 barriers, 1024 bytes smem
ResourceUsage parse_ptxas_usage(const std::string& log) {
  ResourceUsage usage;
  static const std::regex registers(R"(Used (\d+) registers)"),
      spills(R"((\d+) bytes spill stores, (\d+) bytes spill loads)"), shared(R"((\d+) bytes smem)");
  for (std::sregex_iterator it(log.begin(), log.end(), registers), end; it != end; ++it)
    usage.registers = std::max(usage.registers, std::stoi((*it)[1]));
  for (std::sregex_iterator it(log.begin(), log.end(), spills), end; it != end; ++it)
    usage.spill_bytes = std::max(usage.spill_bytes, std::stoi((*it)[1]) + std::stoi((*it)[2]));
  for (std::sregex_iterator it(log.begin(), log.end(), shared), end; it != end; ++it)
    usage.shared_bytes = std::max(usage.shared_bytes, std::stoi((*it)[1]));
  if (usage.registers >= 0 && usage.shared_bytes < 0) usage.shared_bytes = 0;  // ptxas omits "0 bytes smem"
  return usage;
}

// A device's primary context, retained for as long as its Device, Modules or Events live.
struct Context {
  explicit Context(const Driver& driver) : d(driver) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  const Driver& d;
  CUdevice device = 0;
  CUcontext context = nullptr;
  ~Context() {
    if (context) d.context_release(device);
  }
};

struct CudaModule final : Module {
  std::shared_ptr<Context> context;
  CUmodule module = nullptr;
  std::string name;  // the binary's file, for error messages
  struct Function {
    CUfunction handle = nullptr;
    // What the kernel was last allowed (0: never set). Not assumed to be 48 KiB: the default is 48 KiB
    // minus the kernel's static shared memory, so any dynamic request is opted into explicitly.
    unsigned max_dynamic_shared = 0;
  };
  mutable std::map<std::string, Function, std::less<>> functions;  // looked up on first launch
  ~CudaModule() override {
    if (context->d.context_set_current(context->context) == CUDA_SUCCESS) context->d.module_unload(module);
  }
};

struct CudaEvent final : Event {
  std::shared_ptr<Context> context;
  CUevent event = nullptr;
  ~CudaEvent() override {
    if (context->d.context_set_current(context->context) == CUDA_SUCCESS) context->d.event_destroy(event);
  }
};

class CudaDevice final : public Device {
 public:
  CudaDevice(DeviceInfo info, std::shared_ptr<Context> context, CUstream stream)
      : info_(std::move(info)), context_(std::move(context)), d_(context_->d), stream_(stream) {}

  ~CudaDevice() override {
    if (dead_ || d_.context_set_current(context_->context) != CUDA_SUCCESS) return;
    d_.stream_synchronize(stream_);
    if (flush_buffer_) d_.memory_free(flush_buffer_);
    d_.stream_destroy(stream_);
  }

  const DeviceInfo& info() const override { return info_; }

  Result<DevicePtr> alloc(std::size_t bytes) override {
    if (auto s = enter(); !s) return s.error();
    if (bytes == 0) return DevicePtr{0};
    CUdeviceptr ptr = 0;
    if (auto s = check(d_.memory_alloc(&ptr, bytes), [&] { return fmt::format("cuMemAlloc of {} bytes", bytes); }); !s)
      return s.error();
    return DevicePtr{ptr};
  }

  void free(DevicePtr ptr) override {
    if (ptr == 0 || !enter()) return;
    (void)check(d_.memory_free(ptr), [] { return std::string("cuMemFree"); });
  }

  Status copy_in(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(d_.copy_in(dst, src, bytes, stream_),
                       [&] { return fmt::format("cuMemcpyHtoDAsync of {} bytes to {:#x}", bytes, dst); });
        !s)
      return s;
    return synchronize();
  }

  Status copy_out(void* dst, DevicePtr src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(d_.copy_out(dst, src, bytes, stream_),
                       [&] { return fmt::format("cuMemcpyDtoHAsync of {} bytes from {:#x}", bytes, src); });
        !s)
      return s;
    return synchronize();
  }

  Status fill(DevicePtr dst, std::uint8_t byte, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    return check(d_.fill(dst, byte, bytes, stream_),
                 [&] { return fmt::format("cuMemsetD8Async of {} bytes at {:#x}", bytes, dst); });
  }

  Result<std::unique_ptr<Module>> load(const Binary& binary) override {
    if (binary.backend != "cuda" || (binary.format != "cubin" && binary.format != "ptx"))
      return make_error(ErrorKind::invalid_input, "cuda: cannot load a {} {} binary ({})", binary.backend,
                        binary.format, binary.path);
    if (auto s = enter(); !s) return s.error();
    auto image = read_file(binary.path);  // PTX must end in a NUL, which std::string keeps after its data
    if (!image) return image.error();
    // PTX is compiled here by the driver's JIT, whose complaints (a PTX version too new for this
    // driver, say) land in the error log.
    std::string log(8192, '\0');
    CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void* values[] = {log.data(), reinterpret_cast<void*>(static_cast<std::uintptr_t>(log.size()))};
    auto module = std::make_unique<CudaModule>();
    module->context = context_;
    module->name = binary.path;
    const CUresult rc = d_.module_load(&module->module, image->c_str(), 2, options, values);
    log.resize(std::strlen(log.c_str()));
    if (auto s = check(rc,
                       [&] {
                         return fmt::format("cuModuleLoadDataEx of {} ({} for {}, this device is {}){}", binary.path,
                                            binary.format, binary.arch, info_.arch, log.empty() ? "" : "\n" + log);
                       });
        !s) {
      module->module = nullptr;
      return s.error();
    }
    return std::unique_ptr<Module>(std::move(module));
  }

  Status launch(const Module& module, const std::string& entry, const LaunchDims& dims, void** args) override {
    auto* loaded = dynamic_cast<const CudaModule*>(&module);
    if (!loaded || loaded->context != context_)
      return make_error(ErrorKind::invalid_input,
                        "cuda device {}: launch of {}: the module was loaded by another device", info_.index, entry);
    if (auto s = enter(); !s) return s;
    auto found = loaded->functions.find(entry);
    if (found == loaded->functions.end()) {
      CUfunction function = nullptr;
      if (auto s = check(d_.module_function(&function, loaded->module, entry.c_str()),
                         [&] { return fmt::format("cuModuleGetFunction '{}' in {}", entry, loaded->name); });
          !s)
        return s;
      found = loaded->functions.emplace(entry, CudaModule::Function{function}).first;
    }
    CudaModule::Function& function = found->second;
    if (dims.shared_bytes > function.max_dynamic_shared) {
      if (auto s = check(d_.function_attribute(function.handle, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                               static_cast<int>(dims.shared_bytes)),
                         [&] {
                           return fmt::format("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES = {}) for '{}'",
                                              dims.shared_bytes, entry);
                         });
          !s)
        return s;
      function.max_dynamic_shared = dims.shared_bytes;
    }
    return check(d_.launch(function.handle, dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                           dims.block[2], dims.shared_bytes, stream_, args, nullptr),
                 [&] {
                   return fmt::format("cuLaunchKernel '{}' grid=({},{},{}) block=({},{},{}) smem={}", entry,
                                      dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                                      dims.block[2], dims.shared_bytes);
                 });
  }

  Status synchronize() override {
    if (auto s = enter(); !s) return s;
    return check(d_.stream_synchronize(stream_), [] { return std::string("cuStreamSynchronize"); });
  }

  Result<std::unique_ptr<Event>> create_event() override {
    if (auto s = enter(); !s) return s.error();
    auto event = std::make_unique<CudaEvent>();
    event->context = context_;
    if (auto s = check(d_.event_create(&event->event, CU_EVENT_DEFAULT), [] { return std::string("cuEventCreate"); });
        !s) {
      event->event = nullptr;
      return s.error();
    }
    return std::unique_ptr<Event>(std::move(event));
  }

  Status record(Event& event) override {
    auto* e = dynamic_cast<CudaEvent*>(&event);
    if (!e || e->context != context_)
      return make_error(ErrorKind::invalid_input, "cuda device {}: the event was created by another device",
                        info_.index);
    if (auto s = enter(); !s) return s;
    return check(d_.event_record(e->event, stream_), [] { return std::string("cuEventRecord"); });
  }

  Result<double> elapsed_ms(const Event& start, const Event& end) override {
    auto *a = dynamic_cast<const CudaEvent*>(&start), *b = dynamic_cast<const CudaEvent*>(&end);
    if (!a || !b || a->context != context_ || b->context != context_)
      return make_error(ErrorKind::invalid_input, "cuda device {}: the events were created by another device",
                        info_.index);
    if (auto s = enter(); !s) return s.error();
    if (auto s = check(d_.event_synchronize(b->event), [] { return std::string("cuEventSynchronize"); }); !s)
      return s.error();
    float ms = 0;
    if (auto s = check(d_.event_elapsed(&ms, a->event, b->event), [] { return std::string("cuEventElapsedTime"); }); !s)
      return s.error();
    return static_cast<double>(ms);
  }

  Status flush_l2() override {
    if (auto s = enter(); !s) return s;
    if (!flush_buffer_) {
      flush_bytes_ = std::max<std::size_t>(2 * static_cast<std::size_t>(info_.l2_bytes), 8u << 20);
      if (auto s = check(d_.memory_alloc(&flush_buffer_, flush_bytes_),
                         [&] { return fmt::format("cuMemAlloc of the {}-byte L2 flush buffer", flush_bytes_); });
          !s)
        return s;
    }
    flush_byte_ ^= 0xff;  // a different value each time, so no write is ever redundant
    if (auto s = check(d_.fill(flush_buffer_, flush_byte_, flush_bytes_, stream_),
                       [&] { return fmt::format("cuMemsetD8Async of the {}-byte L2 flush buffer", flush_bytes_); });
        !s)
      return s;
    const CUresult rc = d_.reset_persisting_l2();
    if (rc == CUDA_ERROR_NOT_SUPPORTED) return {};  // no persisting L2 before sm_80
    return check(rc, [] { return std::string("cuCtxResetPersistingL2Cache"); });
  }

  bool dead() const override { return dead_; }
  void* native_stream() const override { return stream_; }

 private:
  // Makes the context current on the calling thread (the evaluator may call from any thread),
  // unless a sticky error killed it.
  Status enter() {
    if (dead_)
      return make_error(ErrorKind::internal, "cuda device {}: the context is dead since {}; restart the process",
                        info_.index, dead_reason_);
    return check(d_.context_set_current(context_->context), [] { return std::string("cuCtxSetCurrent"); });
  }

  // `what` (a function, so the message costs nothing on success) says what was being done.
  template <class What>
  Status check(CUresult rc, const What& what) {
    if (rc == CUDA_SUCCESS) return {};
    std::string message = fmt::format("cuda device {}: {}: {}", info_.index, what(), describe(d_, rc));
    if (is_sticky(rc)) {
      dead_ = true;
      dead_reason_ = describe(d_, rc);
      message += "; the context is dead: restart the process";
    }
    return Error{ErrorKind::internal, message};
  }

  DeviceInfo info_;
  std::shared_ptr<Context> context_;
  const Driver& d_;
  CUstream stream_ = nullptr;
  CUdeviceptr flush_buffer_ = 0;
  std::size_t flush_bytes_ = 0;
  std::uint8_t flush_byte_ = 0;
  bool dead_ = false;
  std::string dead_reason_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CompileCache& cache) : Backend(cache) {}

  std::string name() const override { return "cuda"; }

  Status compiler_status() const override {
    if (!nvrtc()) return nvrtc().error();
    return {};
  }

  std::string compiler_version() const override {
    return nvrtc() ? fmt::format("NVRTC {}.{}", nvrtc()->major, nvrtc()->minor) : "NVRTC (not found)";
  }

  std::string default_arch() const override {
    auto found = devices();
    return found && !found->empty() ? found->front().arch : "sm_90";
  }

  Result<Binary> compile(const CompileRequest& request) const override {
    if (!nvrtc()) return nvrtc().error();
    const std::string arch = request.arch.empty() ? default_arch() : request.arch;
    static const std::regex arch_form(R"(^(sm|compute)_[0-9]{2,3}[af]?$)");
    if (!std::regex_match(arch, arch_form))
      return make_error(ErrorKind::invalid_input,
                        "'{}' is not a CUDA arch (sm_80, sm_90, sm_90a, sm_100, compute_90, ...)", arch);
    const bool ptx = arch.rfind("compute_", 0) == 0;

    std::vector<std::string> options = {"--gpu-architecture=" + arch, "-I" + cuda_root() + "/include", "-std=c++17",
                                        "-lineinfo", "-DKFORGE_WARP_SIZE=32"};
    if (!ptx) options.push_back("--ptxas-options=-v");
    for (const auto& [k, v] : request.defines) options.push_back(fmt::format("-D{}={}", k, v));

    std::string material = fmt::format("cuda\n{}\n{}\n", compiler_version(), request.file_name);
    for (const auto& o : options) material += o + "\n";
    auto binary =
        cache().get_or_build("cuda", content_hash(material + request.source), ptx ? "ptx" : "cubin",
                            [&](const std::string& output) { return nvrtc_compile(request, options, ptx, output); });
    if (!binary) return binary;
    binary->arch = arch;
    binary->usage = parse_ptxas_usage(binary->log);
    return binary;
  }

  Result<std::unique_ptr<Device>> open_device(int index) const override {
    auto found = devices();
    if (!found) return make_error(ErrorKind::io, "cuda: unavailable: {}", found.error().message);
    if (index < 0 || index >= static_cast<int>(found->size()))
      return make_error(ErrorKind::invalid_input, "cuda: no device {} (this machine has {})", index, found->size());
    const Driver& d = *driver();
    auto context = std::make_shared<Context>(d);
    auto fail = [&](const char* what, CUresult rc) {
      return make_error(ErrorKind::internal, "cuda device {}: {}: {}", index, what, describe(d, rc));
    };
    if (CUresult rc = d.device_get(&context->device, index); rc != CUDA_SUCCESS) return fail("cuDeviceGet", rc);
    if (CUresult rc = d.context_retain(&context->context, context->device); rc != CUDA_SUCCESS) {
      context->context = nullptr;
      return fail("cuDevicePrimaryCtxRetain", rc);
    }
    if (CUresult rc = d.context_set_current(context->context); rc != CUDA_SUCCESS) return fail("cuCtxSetCurrent", rc);
    // Non-blocking: the harness's stream never waits on, or is waited on by, the legacy default stream.
    CUstream stream = nullptr;
    if (CUresult rc = d.stream_create(&stream, CU_STREAM_NON_BLOCKING); rc != CUDA_SUCCESS)
      return fail("cuStreamCreate", rc);
    return std::unique_ptr<Device>(std::make_unique<CudaDevice>((*found)[static_cast<size_t>(index)], context, stream));
  }

  Result<std::vector<DeviceInfo>> devices() const override {
    if (!driver()) return make_error(ErrorKind::io, "{}", driver().error().message);
    const Driver& d = *driver();
    int count = 0;
    if (CUresult rc = d.device_count(&count); rc != CUDA_SUCCESS)
      return make_error(ErrorKind::io, "cuDeviceGetCount: {}", describe(d, rc));
    if (count == 0) return make_error(ErrorKind::io, "the driver sees no NVIDIA GPU");
    std::vector<DeviceInfo> out;
    for (int i = 0; i < count; ++i) {
      CUdevice device = 0;
      d.device_get(&device, i);
      char name[256] = {};
      d.device_name(name, sizeof name, device);
      size_t memory = 0;
      d.total_memory(&memory, device);
      DeviceInfo info;
      info.backend = "cuda";
      info.index = i;
      info.name = name;
      info.arch = fmt::format("sm_{}{}", attribute(d, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                              attribute(d, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));
      info.compute_units = attribute(d, device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
      info.memory_bytes = static_cast<std::int64_t>(memory);
      info.l2_bytes = attribute(d, device, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
      info.clock_khz = attribute(d, device, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
      info.memory_clock_khz = attribute(d, device, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
      info.memory_bus_bits = attribute(d, device, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
      info.warp_size = attribute(d, device, CU_DEVICE_ATTRIBUTE_WARP_SIZE);
      out.push_back(info);
    }
    return out;
  }

 private:
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache) {
  return std::make_unique<CudaBackend>(cache);
}

}  // namespace kforge
