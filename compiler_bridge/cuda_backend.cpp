// cuda: NVRTC compiles to CUBIN (sm_XX) or PTX (compute_XX); the driver API answers device
// queries. Both libraries are dlopen'ed, so kforge starts and runs its CPU path without them.
#include <cuda.h>
#include <nvrtc.h>

#include <cstdlib>
#include <filesystem>
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
};

// The driver, initialised; the error says why there is no usable one.
const Result<Driver>& driver() {
  static const Result<Driver> loaded = []() -> Result<Driver> {
    auto lib = open_first({"libcuda.so.1"});
    if (!lib) return lib.error();
    Driver d{std::move(*lib)};
    for (Status s : {bind(d.lib, d.init, "cuInit"), bind(d.lib, d.driver_version, "cuDriverGetVersion"),
                     bind(d.lib, d.device_count, "cuDeviceGetCount"), bind(d.lib, d.device_get, "cuDeviceGet"),
                     bind(d.lib, d.device_name, "cuDeviceGetName"), bind(d.lib, d.attribute, "cuDeviceGetAttribute"),
                     bind(d.lib, d.total_memory, "cuDeviceTotalMem_v2"), bind(d.lib, d.error_string, "cuGetErrorString")})
      if (!s) return s.error();
    if (CUresult rc = d.init(0); rc != CUDA_SUCCESS) {
      if (rc == CUDA_ERROR_STUB_LIBRARY) return make_error(ErrorKind::io, "libcuda.so.1 is the toolkit's stub, not a driver");
      const char* text = nullptr;
      d.error_string(rc, &text);
      return make_error(ErrorKind::io, "cuInit: {}", text ? text : std::to_string(rc));
    }
    return d;
  }();
  return loaded;
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
  static const std::regex registers(R"(Used (\d+) registers)"), spills(R"((\d+) bytes spill stores, (\d+) bytes spill loads)"),
      shared(R"((\d+) bytes smem)");
  for (std::sregex_iterator it(log.begin(), log.end(), registers), end; it != end; ++it)
    usage.registers = std::max(usage.registers, std::stoi((*it)[1]));
  for (std::sregex_iterator it(log.begin(), log.end(), spills), end; it != end; ++it)
    usage.spill_bytes = std::max(usage.spill_bytes, std::stoi((*it)[1]) + std::stoi((*it)[2]));
  for (std::sregex_iterator it(log.begin(), log.end(), shared), end; it != end; ++it)
    usage.shared_bytes = std::max(usage.shared_bytes, std::stoi((*it)[1]));
  if (usage.registers >= 0 && usage.shared_bytes < 0) usage.shared_bytes = 0;  // ptxas omits "0 bytes smem"
  return usage;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CompileCache& cache) : cache_(cache) {}

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
    const Nvrtc& n = *nvrtc();
    const std::string arch = request.arch.empty() ? default_arch() : request.arch;
    static const std::regex arch_form(R"(^(sm|compute)_[0-9]{2,3}[af]?$)");
    if (!std::regex_match(arch, arch_form))
      return make_error(ErrorKind::invalid_input, "'{}' is not a CUDA arch (sm_80, sm_90, sm_90a, sm_100, compute_90, ...)", arch);
    const bool ptx = arch.rfind("compute_", 0) == 0;

    std::vector<std::string> options = {"--gpu-architecture=" + arch, "-I" + cuda_root() + "/include", "-std=c++17",
                                        "-lineinfo", "-DKFORGE_WARP_SIZE=32"};
    if (!ptx) options.push_back("--ptxas-options=-v");
    for (const auto& [k, v] : request.defines) options.push_back(fmt::format("-D{}={}", k, v));

    std::string material = fmt::format("cuda\n{}\n{}\n", compiler_version(), request.file_name);
    for (const auto& o : options) material += o + "\n";
    const std::string key = content_hash(material + request.source);
    const char* format = ptx ? "ptx" : "cubin";
    if (auto hit = cache_.lookup("cuda", key, format)) {
      hit->arch = arch;
      hit->usage = parse_ptxas_usage(hit->log);
      return *hit;
    }

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
    if (rc != NVRTC_SUCCESS)
      return Error{ErrorKind::compile, log.empty() ? std::string(n.error_string(rc)) : log};

    Binary binary{"cuda", arch, format, "", key, log, false, parse_ptxas_usage(log), 0};
    if (auto s = cache_.store_bytes(binary, bytes); !s) return s.error();
    return binary;
  }

  Result<std::vector<DeviceInfo>> devices() const override {
    if (!driver()) return make_error(ErrorKind::io, "{}", driver().error().message);
    const Driver& d = *driver();
    int count = 0;
    if (CUresult rc = d.device_count(&count); rc != CUDA_SUCCESS)
      return make_error(ErrorKind::io, "cuDeviceGetCount failed ({})", static_cast<int>(rc));
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
      info.warp_size = attribute(d, device, CU_DEVICE_ATTRIBUTE_WARP_SIZE);
      out.push_back(info);
    }
    return out;
  }

 private:
  CompileCache cache_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache) { return std::make_unique<CudaBackend>(cache); }

}  // namespace kforge
