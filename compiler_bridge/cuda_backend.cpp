// cuda: NVRTC compiles to CUBIN (sm_XX) or PTX (compute_XX); the driver API answers device
// queries and runs kernels (primary context, one non-blocking stream, events) through the Device
// it shares with hip (gpu_device.hpp), filling its table. Both libraries are dlopen'ed, so kforge
// starts and runs its CPU path without them.
#include <cuda.h>
#include <nvrtc.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

#include "compiler_bridge/gpu_device.hpp"

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

// The driver's table (gpu_device.hpp), and the calls only this file makes.
struct Driver : GpuDriverApi {
  explicit Driver(SharedLibrary library) : lib(std::move(library)) {}
  SharedLibrary lib;
  decltype(&cuInit) init = nullptr;
  decltype(&cuDriverGetVersion) driver_version = nullptr;
  decltype(&cuDeviceGetCount) device_count = nullptr;
  decltype(&cuGetErrorString) error_string = nullptr;
  decltype(&cuGetErrorName) error_name = nullptr;
  decltype(&cuCtxSetCurrent) context_set_current = nullptr;
  decltype(&cuCtxResetPersistingL2Cache) reset_l2 = nullptr;
  decltype(&cuModuleLoadDataEx) module_load_ex = nullptr;
  decltype(&cuFuncSetAttribute) function_attribute = nullptr;
  decltype(&cuEventCreate) event_create_with_flags = nullptr;
};
static_assert(CUDA_SUCCESS == 0 && sizeof(CUresult) == sizeof(int) && sizeof(CUdeviceptr) == sizeof(DevicePtr));
static_assert(CU_STREAM_NON_BLOCKING == gpu_stream_non_blocking);

const Result<Driver>& driver();
// The loaded driver, for the calls below: made only once it loaded.
const Driver& cuda() {
  return *driver();
}

// "CUDA_ERROR_OUT_OF_MEMORY: out of memory"
std::string describe(int code) {
  const auto rc = static_cast<CUresult>(code);
  const char *name = nullptr, *text = nullptr;
  cuda().error_name(rc, &name);
  cuda().error_string(rc, &text);
  return fmt::format("{}: {}", name ? name : fmt::format("CUresult {}", code), text ? text : "unknown error");
}

// Whether the context survives `rc`. Only errors known to leave it usable are recoverable; any
// other (illegal address, launch failure, ECC, "unknown" after an Xid...) marks it dead, so the
// worker is restarted rather than kept on a broken context.
bool is_sticky(int rc) {
  switch (static_cast<CUresult>(rc)) {
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

// "sm_90": the device's compute capability.
std::string arch_of(int device) {
  auto attribute = [device](CUdevice_attribute which) {
    int value = 0;
    cuda().device_attribute(&value, which, device);
    return value;
  };
  return fmt::format("sm_{}{}", attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                     attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));
}

// The table's calls that CUDA makes differently.
int make_current(void* context, int) {
  return cuda().context_set_current(static_cast<CUcontext>(context));
}

// PTX is compiled here by the driver's JIT, whose complaints (a PTX version too new for this
// driver, say) land in the error log.
int load_module(void** module, const char* image, std::string& log) {
  log.assign(8192, '\0');
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void* values[] = {log.data(), reinterpret_cast<void*>(static_cast<std::uintptr_t>(log.size()))};
  CUmodule loaded = nullptr;
  const CUresult rc = cuda().module_load_ex(&loaded, image, 2, options, values);
  log.resize(std::strlen(log.c_str()));
  *module = loaded;
  return rc;
}

int max_dynamic_shared(void* function, int bytes) {
  return cuda().function_attribute(static_cast<CUfunction>(function), CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                   bytes);
}

int create_event(void** event) {
  CUevent created = nullptr;
  const CUresult rc = cuda().event_create_with_flags(&created, CU_EVENT_DEFAULT);
  *event = created;
  return rc;
}

int reset_persisting_l2() {
  const CUresult rc = cuda().reset_l2();
  return rc == CUDA_ERROR_NOT_SUPPORTED ? CUDA_SUCCESS : rc;  // no persisting L2 before sm_80
}

// The driver, initialised; the error says why there is no usable one. Never unloaded: contexts,
// modules and events may outlive static destruction.
const Result<Driver>& driver() {
  static const Result<Driver>& loaded = *new Result<Driver>([]() -> Result<Driver> {
    auto lib = open_first({"libcuda.so.1"});
    if (!lib) return lib.error();
    Driver d(std::move(*lib));
    const SharedLibrary& l = d.lib;
    // Versioned names (cuMemAlloc_v2, ...) are what cuda.h's macros call; dlsym needs them spelled out.
    for (Status s :
         {bind(l, d.init, "cuInit"), bind(l, d.driver_version, "cuDriverGetVersion"),
          bind(l, d.device_count, "cuDeviceGetCount"),
          bind_call<decltype(&cuDeviceGet)>(l, d.device_get, {"cuDeviceGet"}),
          bind_call<decltype(&cuDeviceGetName)>(l, d.device_name, {"cuDeviceGetName"}),
          bind_call<decltype(&cuDeviceGetAttribute)>(l, d.device_attribute, {"cuDeviceGetAttribute"}),
          bind_call<decltype(&cuDeviceTotalMem)>(l, d.total_memory, {"cuDeviceTotalMem_v2"}),
          bind(l, d.error_string, "cuGetErrorString"), bind(l, d.error_name, "cuGetErrorName"),
          bind_call<decltype(&cuDevicePrimaryCtxRetain)>(l, d.context_retain, {"cuDevicePrimaryCtxRetain"}),
          bind_call<decltype(&cuDevicePrimaryCtxRelease)>(l, d.context_release, {"cuDevicePrimaryCtxRelease_v2"}),
          bind(l, d.context_set_current, "cuCtxSetCurrent"), bind(l, d.reset_l2, "cuCtxResetPersistingL2Cache"),
          bind_call<decltype(&cuStreamCreate)>(l, d.stream_create, {"cuStreamCreate"}),
          bind_call<decltype(&cuStreamDestroy)>(l, d.stream_destroy, {"cuStreamDestroy_v2"}),
          bind_call<decltype(&cuStreamSynchronize)>(l, d.stream_synchronize, {"cuStreamSynchronize"}),
          bind_call<decltype(&cuMemAlloc)>(l, d.memory_alloc, {"cuMemAlloc_v2"}),
          bind_call<decltype(&cuMemFree)>(l, d.memory_free, {"cuMemFree_v2"}),
          bind_call<decltype(&cuMemcpyHtoDAsync)>(l, d.copy_in, {"cuMemcpyHtoDAsync_v2"}),
          bind_call<decltype(&cuMemcpyDtoHAsync)>(l, d.copy_out, {"cuMemcpyDtoHAsync_v2"}),
          bind_call<decltype(&cuMemsetD8Async)>(l, d.fill, {"cuMemsetD8Async"}),
          bind(l, d.module_load_ex, "cuModuleLoadDataEx"),
          bind_call<decltype(&cuModuleUnload)>(l, d.module_unload, {"cuModuleUnload"}),
          bind_call<decltype(&cuModuleGetFunction)>(l, d.module_function, {"cuModuleGetFunction"}),
          bind(l, d.function_attribute, "cuFuncSetAttribute"),
          bind_call<decltype(&cuLaunchKernel)>(l, d.launch, {"cuLaunchKernel"}),
          bind(l, d.event_create_with_flags, "cuEventCreate"),
          bind_call<decltype(&cuEventDestroy)>(l, d.event_destroy, {"cuEventDestroy_v2"}),
          bind_call<decltype(&cuEventRecord)>(l, d.event_record, {"cuEventRecord"}),
          bind_call<decltype(&cuEventSynchronize)>(l, d.event_synchronize, {"cuEventSynchronize"}),
          // _v2 since CUDA 12.8 (what CUDA 13's header calls), the same signature before.
          bind_call<decltype(&cuEventElapsedTime)>(l, d.event_elapsed,
                                                   {"cuEventElapsedTime_v2", "cuEventElapsedTime"})})
      if (!s) return s.error();
    d.vendor = "cuda";
    d.holder = "context";
    d.describe = describe;
    d.is_sticky = is_sticky;
    d.formats = {{"cubin", "cubin"}, {"ptx", "ptx"}};
    d.attributes = {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                    CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
                    CU_DEVICE_ATTRIBUTE_CLOCK_RATE,
                    CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
                    CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH,
                    CU_DEVICE_ATTRIBUTE_WARP_SIZE};
    d.arch_of = arch_of;
    d.make_current = {make_current, "cuCtxSetCurrent"};
    d.module_load = {load_module, "cuModuleLoadDataEx"};
    d.max_dynamic_shared = {max_dynamic_shared, "cuFuncSetAttribute"};
    d.event_create = {create_event, "cuEventCreate"};
    d.reset_persisting_l2 = {reset_persisting_l2, "cuCtxResetPersistingL2Cache"};
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

class CudaBackend final : public GpuBackend {
 public:
  using GpuBackend::GpuBackend;

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

  Result<std::vector<DeviceInfo>> devices() const override {
    if (!driver()) return make_error(ErrorKind::io, "{}", driver().error().message);
    int count = 0;
    if (CUresult rc = cuda().device_count(&count); rc != CUDA_SUCCESS)
      return make_error(ErrorKind::io, "cuDeviceGetCount: {}", describe(rc));
    if (count == 0) return make_error(ErrorKind::io, "the driver sees no NVIDIA GPU");
    return list_gpu_devices(cuda(), count);
  }

 private:
  const GpuDriverApi& driver_api() const override { return cuda(); }
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache) {
  return std::make_unique<CudaBackend>(cache);
}

}  // namespace kforge
