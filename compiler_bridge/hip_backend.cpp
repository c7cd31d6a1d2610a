// hip: hiprtc compiles to an AMD code object; the HIP runtime answers device queries and runs
// kernels (module API, one non-blocking stream, events). Both come
// from libamdhip64 (ROCm 5 keeps hiprtc inside it; ROCm 6 ships libhiprtc.so.6), dlopen'ed.
// hiprtc runs in a child process: Debian's ROCm 5.2 aborts the whole process for archs it does
// not know (gfx940, gfx942, gfx1100), and that must cost a compile error, not kforge.
#include <fcntl.h>
#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <regex>

#include "compiler_bridge/backends.hpp"

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

struct Runtime {
  SharedLibrary lib;
  decltype(&hipInit) init = nullptr;
  decltype(&hipGetDeviceCount) device_count = nullptr;
  decltype(&hipDeviceGetName) device_name = nullptr;
  decltype(&hipDeviceTotalMem) total_memory = nullptr;
  decltype(&hipDeviceGetAttribute) attribute = nullptr;
  decltype(&hipGetErrorName) error_name = nullptr;
  decltype(&hipGetErrorString) error_string = nullptr;
  decltype(&hipSetDevice) set_device = nullptr;
  decltype(&hipStreamCreateWithFlags) stream_create = nullptr;
  decltype(&hipStreamDestroy) stream_destroy = nullptr;
  decltype(&hipStreamSynchronize) stream_synchronize = nullptr;
  hipError_t (*memory_alloc)(void**, size_t) = nullptr;  // hipMalloc has C++ template overloads
  decltype(&hipFree) memory_free = nullptr;
  decltype(&hipMemcpyAsync) copy = nullptr;
  decltype(&hipMemsetAsync) fill = nullptr;
  decltype(&hipModuleLoadData) module_load = nullptr;
  decltype(&hipModuleUnload) module_unload = nullptr;
  decltype(&hipModuleGetFunction) module_function = nullptr;
  decltype(&hipModuleLaunchKernel) launch = nullptr;
  decltype(&hipEventCreate) event_create = nullptr;
  decltype(&hipEventDestroy) event_destroy = nullptr;
  decltype(&hipEventRecord) event_record = nullptr;
  decltype(&hipEventSynchronize) event_synchronize = nullptr;
  decltype(&hipEventElapsedTime) event_elapsed = nullptr;
};

// Never unloaded: modules and events may outlive static destruction.
const Result<Runtime>& runtime() {
  static const Result<Runtime>& loaded = *new Result<Runtime>([]() -> Result<Runtime> {
    auto lib = open_first({"libamdhip64.so.6", "libamdhip64.so.5", "/opt/rocm/lib/libamdhip64.so.6"});
    if (!lib) return lib.error();
    Runtime r{std::move(*lib)};
    for (Status s : {bind(r.lib, r.init, "hipInit"),
                     bind(r.lib, r.device_count, "hipGetDeviceCount"),
                     bind(r.lib, r.device_name, "hipDeviceGetName"),
                     bind(r.lib, r.total_memory, "hipDeviceTotalMem"),
                     bind(r.lib, r.attribute, "hipDeviceGetAttribute"),
                     bind(r.lib, r.error_name, "hipGetErrorName"),
                     bind(r.lib, r.error_string, "hipGetErrorString"),
                     bind(r.lib, r.set_device, "hipSetDevice"),
                     bind(r.lib, r.stream_create, "hipStreamCreateWithFlags"),
                     bind(r.lib, r.stream_destroy, "hipStreamDestroy"),
                     bind(r.lib, r.stream_synchronize, "hipStreamSynchronize"),
                     bind(r.lib, r.memory_alloc, "hipMalloc"),
                     bind(r.lib, r.memory_free, "hipFree"),
                     bind(r.lib, r.copy, "hipMemcpyAsync"),
                     bind(r.lib, r.fill, "hipMemsetAsync"),
                     bind(r.lib, r.module_load, "hipModuleLoadData"),
                     bind(r.lib, r.module_unload, "hipModuleUnload"),
                     bind(r.lib, r.module_function, "hipModuleGetFunction"),
                     bind(r.lib, r.launch, "hipModuleLaunchKernel"),
                     bind(r.lib, r.event_create, "hipEventCreate"),
                     bind(r.lib, r.event_destroy, "hipEventDestroy"),
                     bind(r.lib, r.event_record, "hipEventRecord"),
                     bind(r.lib, r.event_synchronize, "hipEventSynchronize"),
                     bind(r.lib, r.event_elapsed, "hipEventElapsedTime")})
      if (!s) return s.error();
    return r;
  }());
  return loaded;
}

// "hipErrorOutOfMemory: out of memory"
std::string describe(const Runtime& r, hipError_t rc) {
  const char *name = r.error_name(rc), *text = r.error_string(rc);
  return fmt::format("{}: {}", name ? name : fmt::format("hipError_t {}", static_cast<int>(rc)),
                     text ? text : "unknown error");
}

// Errors after which the device is unusable for this process. HIP numbers them as CUDA does; 714
// to 718 (hardware stack, illegal instruction, misaligned address, address space, PC) are not
// in ROCm 5's enum but are CUDA's, which HIP on NVIDIA passes through. (ROCm itself usually
// aborts the whole process on a GPU memory fault: the evaluator's worker absorbs that.)
bool is_sticky(hipError_t rc) {
  switch (static_cast<int>(rc)) {
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

struct HipModule final : Module {
  const Runtime* r = nullptr;
  int device = 0;
  hipModule_t module = nullptr;
  std::string name;                                                     // the binary's file
  mutable std::map<std::string, hipFunction_t, std::less<>> functions;  // looked up on first launch
  ~HipModule() override {
    if (module && r->set_device(device) == hipSuccess) (void)r->module_unload(module);
  }
};

struct HipEvent final : Event {
  const Runtime* r = nullptr;
  int device = 0;
  hipEvent_t event = nullptr;
  ~HipEvent() override {
    if (event && r->set_device(device) == hipSuccess) (void)r->event_destroy(event);
  }
};

class HipDevice final : public Device {
 public:
  HipDevice(DeviceInfo info, const Runtime& r, hipStream_t stream) : info_(std::move(info)), r_(r), stream_(stream) {}

  ~HipDevice() override {
    if (dead_ || r_.set_device(info_.index) != hipSuccess) return;
    (void)r_.stream_synchronize(stream_);
    if (flush_buffer_) (void)r_.memory_free(flush_buffer_);
    (void)r_.stream_destroy(stream_);
  }

  const DeviceInfo& info() const override { return info_; }

  Result<DevicePtr> alloc(std::size_t bytes) override {
    if (auto s = enter(); !s) return s.error();
    if (bytes == 0) return DevicePtr{0};
    void* ptr = nullptr;
    if (auto s = check(r_.memory_alloc(&ptr, bytes), [&] { return fmt::format("hipMalloc of {} bytes", bytes); }); !s)
      return s.error();
    return reinterpret_cast<DevicePtr>(ptr);
  }

  void free(DevicePtr ptr) override {
    if (ptr == 0 || !enter()) return;
    (void)check(r_.memory_free(address(ptr)), [] { return std::string("hipFree"); });
  }

  Status copy_in(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(r_.copy(address(dst), src, bytes, hipMemcpyHostToDevice, stream_),
                       [&] { return fmt::format("hipMemcpyAsync of {} bytes to {:#x}", bytes, dst); });
        !s)
      return s;
    return synchronize();
  }

  Status copy_out(void* dst, DevicePtr src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(r_.copy(dst, address(src), bytes, hipMemcpyDeviceToHost, stream_),
                       [&] { return fmt::format("hipMemcpyAsync of {} bytes from {:#x}", bytes, src); });
        !s)
      return s;
    return synchronize();
  }

  Status fill(DevicePtr dst, std::uint8_t byte, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    return check(r_.fill(address(dst), byte, bytes, stream_),
                 [&] { return fmt::format("hipMemsetAsync of {} bytes at {:#x}", bytes, dst); });
  }

  Result<std::unique_ptr<Module>> load(const Binary& binary) override {
    if (binary.backend != "hip" || binary.format != "hsaco")
      return make_error(ErrorKind::invalid_input, "hip: cannot load a {} {} binary ({})", binary.backend, binary.format,
                        binary.path);
    if (auto s = enter(); !s) return s.error();
    auto image = read_file(binary.path);
    if (!image) return image.error();
    auto module = std::make_unique<HipModule>();
    module->r = &r_;
    module->device = info_.index;
    module->name = binary.path;
    if (auto s = check(r_.module_load(&module->module, image->data()),
                       [&] {
                         return fmt::format("hipModuleLoadData of {} (code object for {}, this device is {})",
                                            binary.path, binary.arch, info_.arch);
                       });
        !s) {
      module->module = nullptr;
      return s.error();
    }
    return std::unique_ptr<Module>(std::move(module));
  }

  Status launch(const Module& module, const std::string& entry, const LaunchDims& dims, void** args) override {
    auto* loaded = dynamic_cast<const HipModule*>(&module);
    if (!loaded || loaded->device != info_.index)
      return make_error(ErrorKind::invalid_input,
                        "hip device {}: launch of {}: the module was loaded by another device", info_.index, entry);
    if (auto s = enter(); !s) return s;
    auto found = loaded->functions.find(entry);
    if (found == loaded->functions.end()) {
      hipFunction_t function = nullptr;
      if (auto s = check(r_.module_function(&function, loaded->module, entry.c_str()),
                         [&] { return fmt::format("hipModuleGetFunction '{}' in {}", entry, loaded->name); });
          !s)
        return s;
      found = loaded->functions.emplace(entry, function).first;
    }
    return check(r_.launch(found->second, dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                           dims.block[2], dims.shared_bytes, stream_, args, nullptr),
                 [&] {
                   return fmt::format("hipModuleLaunchKernel '{}' grid=({},{},{}) block=({},{},{}) smem={}", entry,
                                      dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                                      dims.block[2], dims.shared_bytes);
                 });
  }

  Status synchronize() override {
    if (auto s = enter(); !s) return s;
    return check(r_.stream_synchronize(stream_), [] { return std::string("hipStreamSynchronize"); });
  }

  Result<std::unique_ptr<Event>> create_event() override {
    if (auto s = enter(); !s) return s.error();
    auto event = std::make_unique<HipEvent>();
    event->r = &r_;
    event->device = info_.index;
    if (auto s = check(r_.event_create(&event->event), [] { return std::string("hipEventCreate"); }); !s) {
      event->event = nullptr;
      return s.error();
    }
    return std::unique_ptr<Event>(std::move(event));
  }

  Status record(Event& event) override {
    auto* e = dynamic_cast<HipEvent*>(&event);
    if (!e || e->device != info_.index)
      return make_error(ErrorKind::invalid_input, "hip device {}: the event was created by another device",
                        info_.index);
    if (auto s = enter(); !s) return s;
    return check(r_.event_record(e->event, stream_), [] { return std::string("hipEventRecord"); });
  }

  Result<double> elapsed_ms(const Event& start, const Event& end) override {
    auto *a = dynamic_cast<const HipEvent*>(&start), *b = dynamic_cast<const HipEvent*>(&end);
    if (!a || !b || a->device != info_.index || b->device != info_.index)
      return make_error(ErrorKind::invalid_input, "hip device {}: the events were created by another device",
                        info_.index);
    if (auto s = enter(); !s) return s.error();
    if (auto s = check(r_.event_synchronize(b->event), [] { return std::string("hipEventSynchronize"); }); !s)
      return s.error();
    float ms = 0;
    if (auto s = check(r_.event_elapsed(&ms, a->event, b->event), [] { return std::string("hipEventElapsedTime"); });
        !s)
      return s.error();
    return static_cast<double>(ms);
  }

  // HIP has no persisting-L2 control, so flushing is the write alone.
  Status flush_l2() override {
    if (auto s = enter(); !s) return s;
    if (!flush_buffer_) {
      flush_bytes_ = std::max<std::size_t>(2 * static_cast<std::size_t>(info_.l2_bytes), 8u << 20);
      if (auto s = check(r_.memory_alloc(&flush_buffer_, flush_bytes_),
                         [&] { return fmt::format("hipMalloc of the {}-byte L2 flush buffer", flush_bytes_); });
          !s)
        return s;
    }
    flush_byte_ ^= 0xff;  // a different value each time, so no write is ever redundant
    return check(r_.fill(flush_buffer_, flush_byte_, flush_bytes_, stream_),
                 [&] { return fmt::format("hipMemsetAsync of the {}-byte L2 flush buffer", flush_bytes_); });
  }

  bool dead() const override { return dead_; }
  void* native_stream() const override { return stream_; }

 private:
  static void* address(DevicePtr ptr) { return reinterpret_cast<void*>(ptr); }

  // Makes the device current on the calling thread (HIP's current device is per thread), unless
  // a sticky error killed it.
  Status enter() {
    if (dead_)
      return make_error(ErrorKind::internal, "hip device {}: the device is dead since {}; restart the process",
                        info_.index, dead_reason_);
    return check(r_.set_device(info_.index), [] { return std::string("hipSetDevice"); });
  }

  // `what` (a function, so the message costs nothing on success) says what was being done.
  template <class What>
  Status check(hipError_t rc, const What& what) {
    if (rc == hipSuccess) return {};
    std::string message = fmt::format("hip device {}: {}: {}", info_.index, what(), describe(r_, rc));
    if (is_sticky(rc)) {
      dead_ = true;
      dead_reason_ = describe(r_, rc);
      message += "; the device is dead: restart the process";
    }
    return Error{ErrorKind::internal, message};
  }

  DeviceInfo info_;
  const Runtime& r_;
  hipStream_t stream_ = nullptr;
  void* flush_buffer_ = nullptr;
  std::size_t flush_bytes_ = 0;
  std::uint8_t flush_byte_ = 0;
  bool dead_ = false;
  std::string dead_reason_;
};

// Wave size by architecture family: GCN and CDNA (gfx8, gfx9) run 64 lanes, RDNA (gfx10, gfx11) 32.
int warp_size_of(const std::string& arch) {
  return arch.rfind("gfx1", 0) == 0 && arch.size() >= 7 ? 32 : 64;
}

class HipBackend final : public Backend {
 public:
  explicit HipBackend(const CompileCache& cache) : Backend(cache) {}

  std::string name() const override { return "hip"; }

  Status compiler_status() const override {
    if (!hiprtc()) return hiprtc().error();
    return {};
  }

  std::string compiler_version() const override {
    return hiprtc() ? fmt::format("hiprtc {}.{}", hiprtc()->major, hiprtc()->minor) : "hiprtc (not found)";
  }

  // The device's gcnArchName is not read yet (see devices()), so the default is fixed: MI200.
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

  Result<std::unique_ptr<Device>> open_device(int index) const override {
    auto found = devices();
    if (!found) return make_error(ErrorKind::io, "hip: unavailable: {}", found.error().message);
    if (index < 0 || index >= static_cast<int>(found->size()))
      return make_error(ErrorKind::invalid_input, "hip: no device {} (this machine has {})", index, found->size());
    const Runtime& r = *runtime();
    if (hipError_t rc = r.set_device(index); rc != hipSuccess)
      return make_error(ErrorKind::internal, "hip device {}: hipSetDevice: {}", index, describe(r, rc));
    hipStream_t stream = nullptr;
    if (hipError_t rc = r.stream_create(&stream, hipStreamNonBlocking); rc != hipSuccess)
      return make_error(ErrorKind::internal, "hip device {}: hipStreamCreateWithFlags: {}", index, describe(r, rc));
    return std::unique_ptr<Device>(std::make_unique<HipDevice>((*found)[static_cast<size_t>(index)], r, stream));
  }

  Result<std::vector<DeviceInfo>> devices() const override {
    if (!runtime()) return make_error(ErrorKind::io, "{}", runtime().error().message);
    const Runtime& r = *runtime();
    int count = 0;
    if (r.init(0) != hipSuccess || r.device_count(&count) != hipSuccess || count == 0)
      return make_error(ErrorKind::io, "the HIP runtime sees no AMD GPU");
    std::vector<DeviceInfo> out;
    for (int i = 0; i < count; ++i) {
      DeviceInfo info;
      info.backend = "hip";
      info.index = i;
      char name[256] = {};
      (void)r.device_name(name, sizeof name, i);
      info.name = name;
      size_t memory = 0;
      (void)r.total_memory(&memory, i);
      info.memory_bytes = static_cast<std::int64_t>(memory);
      auto get = [&](hipDeviceAttribute_t a) {
        int v = 0;
        (void)r.attribute(&v, a, i);
        return v;
      };
      info.compute_units = get(hipDeviceAttributeMultiprocessorCount);
      info.l2_bytes = get(hipDeviceAttributeL2CacheSize);
      info.clock_khz = get(hipDeviceAttributeClockRate);
      info.memory_clock_khz = get(hipDeviceAttributeMemoryClockRate);
      info.memory_bus_bits = get(hipDeviceAttributeMemoryBusWidth);
      info.warp_size = get(hipDeviceAttributeWarpSize);
      info.arch = "unknown";  // gcnArchName sits in hipDeviceProp_t, whose layout differs across ROCm majors
      out.push_back(info);
    }
    return out;
  }

 private:
};

}  // namespace

std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache) {
  return std::make_unique<HipBackend>(cache);
}

}  // namespace kforge
