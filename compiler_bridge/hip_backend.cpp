// hip: hiprtc compiles to an AMD code object; the HIP runtime answers device queries and runs
// kernels (module API, one non-blocking stream, events) through the Device it shares with cuda
// (gpu_device.hpp), filling its table. Both come from libamdhip64 (ROCm 5 keeps hiprtc inside
// it; ROCm 6 ships libhiprtc.so.6), dlopen'ed.
// hiprtc runs in a child process: Debian's ROCm 5.2 aborts the whole process for archs it does
// not know (gfx940, gfx942, gfx1100), and that must cost a compile error, not kforge.
#include <fcntl.h>
#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>
#include <unistd.h>

#include <cstring>
#include <regex>

#include "compiler_bridge/gpu_device.hpp"

namespace kforge {
namespace {

struct Hiprtc {
  SharedLibrary lib;
  decltype(&hiprtcVersion) version = nullptr;
  decltype(&hiprtcCreateProgram) create = nullptr;
  decltype(&hiprtcCompileProgram) compile = nullptr;
  decltype(&hiprtcGetProgramLogSize) log_size = nullptr;
  decltype(&hiprtcGetProgramLog) log = nullptr;
  decltype(&hiprtcGetCodeSize) code_size = nullptr;
  decltype(&hiprtcGetCode) code = nullptr;
  decltype(&hiprtcDestroyProgram) destroy = nullptr;
  int major = 0, minor = 0;
};

const Result<Hiprtc>& hiprtc() {
  static const Result<Hiprtc> loaded = []() -> Result<Hiprtc> {
    auto lib = open_first({"libhiprtc.so.6", "libamdhip64.so.5", "libhiprtc.so", "/opt/rocm/lib/libhiprtc.so.6"});
    if (!lib) return lib.error();
    Hiprtc h{std::move(*lib)};
    for (Status s : {bind(h.lib, h.version, "hiprtcVersion"), bind(h.lib, h.create, "hiprtcCreateProgram"),
                     bind(h.lib, h.compile, "hiprtcCompileProgram"), bind(h.lib, h.log_size, "hiprtcGetProgramLogSize"),
                     bind(h.lib, h.log, "hiprtcGetProgramLog"), bind(h.lib, h.code_size, "hiprtcGetCodeSize"),
                     bind(h.lib, h.code, "hiprtcGetCode"), bind(h.lib, h.destroy, "hiprtcDestroyProgram")})
      if (!s) return s.error();
    h.version(&h.major, &h.minor);
    return h;
  }();
  return loaded;
}

// Runs hiprtc in a child process and writes the code object to `output`; returns the log.
Result<std::string> hiprtc_in_child(const std::string& source, const std::vector<std::string>& options,
                                    const std::string& file_name, const std::string& arch, const std::string& output) {
  auto child = run_in_child(
      [&](int out) {
        // comgr reports its own crash on stderr ("munmap_chunk(): invalid pointer"); ours says more.
        dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
        const Hiprtc& h = *hiprtc();
        hiprtcProgram program = nullptr;
        std::vector<const char*> argv;
        for (const auto& o : options) argv.push_back(o.c_str());
        int rc = h.create(&program, source.c_str(), file_name.c_str(), 0, nullptr, nullptr);
        if (rc == HIPRTC_SUCCESS) rc = h.compile(program, static_cast<int>(argv.size()), argv.data());
        size_t log_size = 0, code_size = 0;
        if (program) h.log_size(program, &log_size);
        std::string log(log_size, '\0'), code;
        if (log_size) h.log(program, log.data());
        if (rc == HIPRTC_SUCCESS) {
          h.code_size(program, &code_size);
          code.resize(code_size);
          h.code(program, code.data());
        }
        std::string message = fmt::format("{} {} {}\n", rc, log.size(), code.size()) + log + code;
        for (size_t done = 0; done < message.size();) {
          ssize_t n = write(out, message.data() + done, message.size() - done);
          if (n <= 0) _exit(3);
          done += static_cast<size_t>(n);
        }
        _exit(0);
      },
      120);
  if (!child) return child.error();
  if (child->timed_out) return make_error(ErrorKind::compile, "{}: hiprtc timed out after 120 s", file_name);
  if (child->signal != 0)
    return make_error(ErrorKind::compile,
                      "hiprtc crashed ({}) compiling for {}: this ROCm (hiprtc {}.{}) does not support that arch",
                      signal_name(child->signal), arch, hiprtc()->major, hiprtc()->minor);
  int rc = -1;
  size_t log_size = 0, code_size = 0;
  const size_t header_end = child->output.find('\n');
  if (header_end == std::string::npos ||
      std::sscanf(child->output.c_str(), "%d %zu %zu", &rc, &log_size, &code_size) != 3 ||
      header_end + 1 + log_size + code_size != child->output.size())
    return make_error(ErrorKind::internal, "hiprtc: the compile process sent an unreadable reply");
  std::string log = child->output.substr(header_end + 1, log_size);
  while (!log.empty() && log.back() == '\0') log.pop_back();
  if (rc != HIPRTC_SUCCESS)
    return Error{ErrorKind::compile, log.empty() ? fmt::format("hiprtc failed with status {} and no log", rc) : log};

  if (auto s = write_file(output, child->output.substr(header_end + 1 + log_size)); !s) return s.error();
  return log;
}

// The runtime's table (gpu_device.hpp), and the calls only this file makes.
struct Runtime : GpuDriverApi {
  explicit Runtime(SharedLibrary library) : lib(std::move(library)) {}
  SharedLibrary lib;
  decltype(&hipInit) init = nullptr;
  decltype(&hipGetDeviceCount) device_count = nullptr;
  decltype(&hipGetErrorName) error_name = nullptr;
  decltype(&hipGetErrorString) error_string = nullptr;
  decltype(&hipSetDevice) set_device = nullptr;
  decltype(&hipMemcpyAsync) copy = nullptr;
  decltype(&hipModuleLoadData) module_load_data = nullptr;
};
static_assert(hipSuccess == 0 && sizeof(hipError_t) == sizeof(int) && sizeof(hipDeviceptr_t) == sizeof(DevicePtr));
static_assert(hipStreamNonBlocking == gpu_stream_non_blocking);

const Result<Runtime>& runtime();
// The loaded runtime, for the calls below: made only once it loaded.
const Runtime& hip() {
  return *runtime();
}

// "hipErrorOutOfMemory: out of memory"
std::string describe(int rc) {
  const char *name = hip().error_name(static_cast<hipError_t>(rc)),
             *text = hip().error_string(static_cast<hipError_t>(rc));
  return fmt::format("{}: {}", name ? name : fmt::format("hipError_t {}", rc), text ? text : "unknown error");
}

// Errors after which the device is unusable for this process. HIP numbers them as CUDA does; 714
// to 718 (hardware stack, illegal instruction, misaligned address, address space, PC) are not
// in ROCm 5's enum but are CUDA's, which HIP on NVIDIA passes through. (ROCm itself usually
// aborts the whole process on a GPU memory fault: the evaluator's worker absorbs that.)
bool is_sticky(int rc) {
  switch (rc) {
    case hipErrorIllegalAddress:
    case hipErrorLaunchTimeOut:
    case hipErrorAssert:
    case 714:
    case 715:
    case 716:
    case 717:
    case 718:
    case hipErrorLaunchFailure:
      return true;
    default:
      return false;
  }
}

// Not read: gcnArchName sits in hipDeviceProp_t, whose layout differs across ROCm majors.
std::string arch_of(int) {
  return "unknown";
}

// The table's calls that HIP makes differently: the current device is an ordinal (per thread),
// copies name their direction, loading has no options.
int make_current(void*, int device) {
  return hip().set_device(device);
}
int copy_in(DevicePtr dst, const void* src, std::size_t bytes, void* stream) {
  return hip().copy(reinterpret_cast<void*>(dst), src, bytes, hipMemcpyHostToDevice, static_cast<hipStream_t>(stream));
}
int copy_out(void* dst, DevicePtr src, std::size_t bytes, void* stream) {
  return hip().copy(dst, reinterpret_cast<void*>(src), bytes, hipMemcpyDeviceToHost, static_cast<hipStream_t>(stream));
}
int load_module(void** module, const char* image, std::string&) {
  hipModule_t loaded = nullptr;
  const hipError_t rc = hip().module_load_data(&loaded, image);
  *module = loaded;
  return rc;
}

// Never unloaded: modules and events may outlive static destruction.
const Result<Runtime>& runtime() {
  static const Result<Runtime>& loaded = *new Result<Runtime>([]() -> Result<Runtime> {
    auto lib = open_first({"libamdhip64.so.6", "libamdhip64.so.5", "/opt/rocm/lib/libamdhip64.so.6"});
    if (!lib) return lib.error();
    Runtime r(std::move(*lib));
    const SharedLibrary& l = r.lib;
    for (Status s : {bind(l, r.init, "hipInit"), bind(l, r.device_count, "hipGetDeviceCount"),
                     bind_call<decltype(&hipDeviceGetName)>(l, r.device_name, {"hipDeviceGetName"}),
                     bind_call<decltype(&hipDeviceTotalMem)>(l, r.total_memory, {"hipDeviceTotalMem"}),
                     bind_call<decltype(&hipDeviceGetAttribute)>(l, r.device_attribute, {"hipDeviceGetAttribute"}),
                     bind(l, r.error_name, "hipGetErrorName"), bind(l, r.error_string, "hipGetErrorString"),
                     bind(l, r.set_device, "hipSetDevice"),
                     bind_call<decltype(&hipStreamCreateWithFlags)>(l, r.stream_create, {"hipStreamCreateWithFlags"}),
                     bind_call<decltype(&hipStreamDestroy)>(l, r.stream_destroy, {"hipStreamDestroy"}),
                     bind_call<decltype(&hipStreamSynchronize)>(l, r.stream_synchronize, {"hipStreamSynchronize"}),
                     // hipMalloc has C++ template overloads: its C signature is spelled out.
                     bind_call<hipError_t (*)(void**, size_t)>(l, r.memory_alloc, {"hipMalloc"}),
                     bind_call<decltype(&hipFree)>(l, r.memory_free, {"hipFree"}), bind(l, r.copy, "hipMemcpyAsync"),
                     bind_call<decltype(&hipMemsetAsync)>(l, r.fill, {"hipMemsetAsync"}),
                     bind(l, r.module_load_data, "hipModuleLoadData"),
                     bind_call<decltype(&hipModuleUnload)>(l, r.module_unload, {"hipModuleUnload"}),
                     bind_call<decltype(&hipModuleGetFunction)>(l, r.module_function, {"hipModuleGetFunction"}),
                     bind_call<decltype(&hipModuleLaunchKernel)>(l, r.launch, {"hipModuleLaunchKernel"}),
                     bind_call<decltype(&hipEventCreate)>(l, r.event_create, {"hipEventCreate"}),
                     bind_call<decltype(&hipEventDestroy)>(l, r.event_destroy, {"hipEventDestroy"}),
                     bind_call<decltype(&hipEventRecord)>(l, r.event_record, {"hipEventRecord"}),
                     bind_call<decltype(&hipEventSynchronize)>(l, r.event_synchronize, {"hipEventSynchronize"}),
                     bind_call<decltype(&hipEventElapsedTime)>(l, r.event_elapsed, {"hipEventElapsedTime"})})
      if (!s) return s.error();
    r.vendor = "hip";
    r.holder = "device";
    r.describe = describe;
    r.is_sticky = is_sticky;
    r.formats = {{"hsaco", "code object"}};
    r.attributes = {hipDeviceAttributeMultiprocessorCount, hipDeviceAttributeL2CacheSize,
                    hipDeviceAttributeClockRate,           hipDeviceAttributeMemoryClockRate,
                    hipDeviceAttributeMemoryBusWidth,      hipDeviceAttributeWarpSize};
    r.arch_of = arch_of;
    r.make_current = {make_current, "hipSetDevice"};
    r.copy_in = {copy_in, "hipMemcpyAsync"};
    r.copy_out = {copy_out, "hipMemcpyAsync"};
    r.module_load = {load_module, "hipModuleLoadData"};
    return r;
  }());
  return loaded;
}

// Wave size by architecture family: GCN and CDNA (gfx8, gfx9) run 64 lanes, RDNA (gfx10, gfx11) 32.
int warp_size_of(const std::string& arch) {
  return arch.rfind("gfx1", 0) == 0 && arch.size() >= 7 ? 32 : 64;
}

class HipBackend final : public GpuBackend {
 public:
  using GpuBackend::GpuBackend;

  std::string name() const override { return "hip"; }

  Status compiler_status() const override {
    if (!hiprtc()) return hiprtc().error();
    return {};
  }

  std::string compiler_version() const override {
    return hiprtc() ? fmt::format("hiprtc {}.{}", hiprtc()->major, hiprtc()->minor) : "hiprtc (not found)";
  }

  // The device's gcnArchName is not read yet (see arch_of()), so the default is fixed: MI200.
  std::string default_arch() const override { return "gfx90a"; }

  Result<Binary> compile(const CompileRequest& request) const override {
    if (!hiprtc()) return hiprtc().error();
    const std::string arch = request.arch.empty() ? default_arch() : request.arch;
    static const std::regex arch_form(R"(^gfx[0-9a-f]{3,4}(:[a-z-]+[+-])*$)");
    if (!std::regex_match(arch, arch_form))
      return make_error(ErrorKind::invalid_input, "'{}' is not an AMD GPU arch (gfx90a, gfx942, gfx1100, ...)", arch);

    std::vector<std::string> options = {"--offload-arch=" + arch, "-O3", "-std=c++17",
                                        fmt::format("-DKFORGE_WARP_SIZE={}", warp_size_of(arch))};
    // Params are #defined after the runtime header, not given as -D: a param called N or T
    // must not rewrite the header's own identifiers.
    std::string defines;
    for (const auto& [k, v] : request.defines) defines += fmt::format("#define {} {}\n", k, v);
    std::string material = fmt::format("hip\n{}\n{}\n", compiler_version(), request.file_name);
    for (const auto& o : options) material += o + "\n";
    // CUDA sources compile unchanged through a small prelude (as ggml does): the runtime header
    // hiprtc does not imply, and the *_sync warp shuffles mapped onto HIP's whole-wave ones.
    const std::string source = fmt::format(
        "#include <hip/hip_runtime.h>\n"
        "#define __shfl_sync(mask, var, lane) __shfl(var, lane)\n"
        "#define __shfl_down_sync(mask, var, delta) __shfl_down(var, delta)\n"
        "#define __shfl_up_sync(mask, var, delta) __shfl_up(var, delta)\n"
        "#define __shfl_xor_sync(mask, var, lane) __shfl_xor(var, lane)\n"
        "{}#line 1 \"{}\"\n{}",
        defines, request.file_name, request.source);

    // The child sends "<status> <log bytes> <code bytes>\n", the log, then the code object.
    auto binary = cache().get_or_build(
        "hip", content_hash(material + defines + request.source), "hsaco",
        [&](const std::string& output) { return hiprtc_in_child(source, options, request.file_name, arch, output); });
    if (binary) binary->arch = arch;
    return binary;
  }

  Result<std::vector<DeviceInfo>> devices() const override {
    if (!runtime()) return make_error(ErrorKind::io, "{}", runtime().error().message);
    int count = 0;
    if (hip().init(0) != hipSuccess || hip().device_count(&count) != hipSuccess || count == 0)
      return make_error(ErrorKind::io, "the HIP runtime sees no AMD GPU");
    return list_gpu_devices(hip(), count);
  }

 private:
  const GpuDriverApi& driver_api() const override { return hip(); }
};

}  // namespace

std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache) {
  return std::make_unique<HipBackend>(cache);
}

}  // namespace kforge
