// hip: hiprtc compiles to an AMD code object; the HIP runtime answers device queries. Both come
// from libamdhip64 (ROCm 5 keeps hiprtc inside it; ROCm 6 ships libhiprtc.so.6), dlopen'ed.
// hiprtc runs in a child process: Debian's ROCm 5.2 aborts the whole process for archs it does
// not know (gfx940, gfx942, gfx1100), and that must cost a compile error, not kforge.
#include <hip/hip_runtime_api.h>
#include <hip/hiprtc.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
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

struct Runtime {
  SharedLibrary lib;
  decltype(&hipInit) init = nullptr;
  decltype(&hipGetDeviceCount) device_count = nullptr;
  decltype(&hipDeviceGetName) device_name = nullptr;
  decltype(&hipDeviceTotalMem) total_memory = nullptr;
  decltype(&hipDeviceGetAttribute) attribute = nullptr;
};

const Result<Runtime>& runtime() {
  static const Result<Runtime> loaded = []() -> Result<Runtime> {
    auto lib = open_first({"libamdhip64.so.6", "libamdhip64.so.5", "/opt/rocm/lib/libamdhip64.so.6"});
    if (!lib) return lib.error();
    Runtime r{std::move(*lib)};
    for (Status s : {bind(r.lib, r.init, "hipInit"), bind(r.lib, r.device_count, "hipGetDeviceCount"),
                     bind(r.lib, r.device_name, "hipDeviceGetName"), bind(r.lib, r.total_memory, "hipDeviceTotalMem"),
                     bind(r.lib, r.attribute, "hipDeviceGetAttribute")})
      if (!s) return s.error();
    return r;
  }();
  return loaded;
}

// Wave size by architecture family: GCN and CDNA (gfx8, gfx9) run 64 lanes, RDNA (gfx10, gfx11) 32.
int warp_size_of(const std::string& arch) { return arch.rfind("gfx1", 0) == 0 && arch.size() >= 7 ? 32 : 64; }

class HipBackend final : public Backend {
 public:
  explicit HipBackend(const CompileCache& cache) : cache_(cache) {}

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
    const std::string key = content_hash(material + defines + request.source);
    if (auto hit = cache_.lookup("hip", key, "hsaco")) {
      hit->arch = arch;
      return *hit;
    }
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
    auto child = run_in_child(
        [&](int out) {
          // comgr reports its own crash on stderr ("munmap_chunk(): invalid pointer"); ours says more.
          dup2(open("/dev/null", O_WRONLY), STDERR_FILENO);
          const Hiprtc& h = *hiprtc();
          hiprtcProgram program = nullptr;
          std::vector<const char*> argv;
          for (const auto& o : options) argv.push_back(o.c_str());
          int rc = h.create(&program, source.c_str(), request.file_name.c_str(), 0, nullptr, nullptr);
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
    if (child->timed_out) return make_error(ErrorKind::compile, "{}: hiprtc timed out after 120 s", request.file_name);
    if (child->signal != 0)
      return make_error(ErrorKind::compile,
                        "hiprtc crashed ({}) compiling for {}: this ROCm ({}) does not support that arch", 
                        signal_name(child->signal), arch, compiler_version());
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

    Binary binary{"hip", arch, "hsaco", "", key, log, false, {}, 0};
    if (auto s = cache_.store_bytes(binary, child->output.substr(header_end + 1 + log_size)); !s) return s.error();
    return binary;
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
      info.warp_size = get(hipDeviceAttributeWarpSize);
      info.arch = "unknown";  // gcnArchName sits in hipDeviceProp_t, whose layout differs across ROCm majors
      out.push_back(info);
    }
    return out;
  }

 private:
  CompileCache cache_;
};

}  // namespace

std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache) { return std::make_unique<HipBackend>(cache); }

}  // namespace kforge
