// The GPU backends' Device (compiler_bridge/gpu_device.cpp, over the driver tables that
// cuda_backend.cpp and hip_backend.cpp fill) on any machine, GPU or not: the backends are the
// real ones, only the vendor's library is a fake (tests/fake_driver/) that logs every call with
// its arguments, checks the handles it is given, keeps "device" memory in host memory, and fails
// a call when told to. The tests read that log to check which driver calls each Device method
// makes, with which context and on which stream, and inject errors to check what the Device then
// reports and whether it declares itself dead.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "compiler_bridge/compiler_bridge.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

// The control API a fake driver exports (tests/fake_driver/fake_driver.hpp).
struct FakeDriver {
  void* library = nullptr;
  const char* (*calls)() = nullptr;
  void (*reset)() = nullptr;
  void (*fail)(const char* call, int rc) = nullptr;
  const char* (*name)(const void* p) = nullptr;
  int (*live)(const char* kind) = nullptr;
};

// The file a loaded library was mapped from.
std::string path_of(void* library) {
  link_map* map = nullptr;
  return dlinfo(library, RTLD_DI_LINKMAP, &map) == 0 && map ? map->l_name : "";
}

template <class R>
std::string message(const R& result) {
  return result.ok() ? "ok" : result.error().message;
}

std::string describe(const DeviceInfo& d) {
  return fmt::format("{} {} '{}' {} units={} memory={} l2={} clock={} memory_clock={} bus={} warp={}", d.backend,
                     d.index, d.name, d.arch, d.compute_units, d.memory_bytes, d.l2_bytes, d.clock_khz,
                     d.memory_clock_khz, d.memory_bus_bits, d.warp_size);
}

// grid (2,3,4), block (32,1,1), the given dynamic shared memory.
LaunchDims dims(unsigned shared_bytes = 0) {
  LaunchDims d;
  d.grid[0] = 2, d.grid[1] = 3, d.grid[2] = 4;
  d.block[0] = 32;
  d.shared_bytes = shared_bytes;
  return d;
}

// One backend over one fake driver library.
class FakeDriverTest : public ::testing::Test {
 protected:
  FakeDriverTest(std::string backend, std::string library, const char* soname, std::string format, std::string arch)
      : backend_name_(std::move(backend)),
        library_(std::move(library)),
        soname_(soname),
        format_(std::move(format)),
        arch_(std::move(arch)) {}

  void SetUp() override {
    load_fake();
    if (IsSkipped() || HasFatalFailure()) return;
    auto backend = make_backend(backend_name_, cache_);
    ASSERT_TRUE(backend.ok()) << backend.error().message;
    backend_ = std::move(*backend);
    dir_ = fs::path(::testing::TempDir()) / fmt::format("kforge-fake-driver-{}", getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Loads the fake by its path before the backend asks for the bare soname: dlopen of a bare
  // name first takes an already loaded library of that soname, so the backend gets the fake
  // whatever the library search path holds (the real driver of a GPU machine included). The
  // ctest entry also puts the fakes' directory first on LD_LIBRARY_PATH.
  void load_fake() {
    if (void* loaded = dlopen(soname_, RTLD_NOW | RTLD_NOLOAD)) {
      const std::string from = path_of(loaded);
      const bool fake = dlsym(loaded, "fake_calls") != nullptr;
      dlclose(loaded);
      ASSERT_TRUE(fake) << soname_ << " is already loaded from " << from << ", and it is not a fake";
      std::error_code ec;
      if (!fs::equivalent(from, library_, ec))
        GTEST_SKIP() << "this process runs the backend on " << from << " already, not on " << library_
                     << ": run this test in a process of its own, as ctest does";
    }
    fake_.library = dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(fake_.library, nullptr) << dlerror();
    void* by_soname = dlopen(soname_, RTLD_NOW | RTLD_NOLOAD);
    ASSERT_EQ(by_soname, fake_.library) << soname_ << " does not resolve to " << library_;
    dlclose(by_soname);
    bind(fake_.calls, "fake_calls");
    bind(fake_.reset, "fake_reset");
    bind(fake_.fail, "fake_fail");
    bind(fake_.name, "fake_name");
    bind(fake_.live, "fake_live");
    ASSERT_TRUE(fake_.calls && fake_.reset && fake_.fail && fake_.name && fake_.live) << library_;
    fake_.reset();
    for (const char* kind : {"context", "stream", "module", "event", "mem"}) baseline_[kind] = fake_.live(kind);
  }
  template <class Fn>
  void bind(Fn& fn, const char* symbol) {
    fn = reinterpret_cast<Fn>(dlsym(fake_.library, symbol));
  }

  // The driver calls made since the last time this was asked.
  std::string calls() {
    std::string all = fake_.calls();
    std::string fresh = all.substr(std::min(seen_, all.size()));
    seen_ = all.size();
    return fresh;
  }
  // How the fake's log names a handle or a device address ("stream1", "mem2+16").
  std::string name(const void* p) { return fake_.name(p); }
  std::string name(DevicePtr p) { return fake_.name(reinterpret_cast<const void*>(p)); }
  // Live driver objects of `kind` made since the test began (for "context", retains).
  int live(const char* kind) { return fake_.live(kind) - baseline_[kind]; }
  void fail(const char* call, int rc) { fake_.fail(call, rc); }

  std::unique_ptr<Device> open(int index) {
    auto device = backend_->open_device(index);
    EXPECT_TRUE(device.ok()) << device.error().message;
    calls();
    return device ? std::move(*device) : nullptr;
  }

  // A file of `text` to load; the fakes load "FAKE-IMAGE <kernels>" and refuse anything else.
  std::string write_image(const std::string& file, const std::string& text) {
    const std::string path = (dir_ / file).string();
    std::ofstream(path) << text;
    return path;
  }
  Binary binary(const std::string& path, std::string format = "", std::string backend = "") const {
    return Binary{.backend = backend.empty() ? backend_name_ : backend,
                  .arch = arch_,
                  .format = format.empty() ? format_ : format,
                  .path = path};
  }
  // A module with kernels k and j.
  std::unique_ptr<Module> load_kernels(Device& device) {
    kernels_path_ = write_image("kernels." + format_, "FAKE-IMAGE k j\n");
    auto module = device.load(binary(kernels_path_));
    EXPECT_TRUE(module.ok()) << module.error().message;
    calls();
    return module ? std::move(*module) : nullptr;
  }

  const std::string backend_name_, library_;
  const char* soname_;
  const std::string format_, arch_;
  CompileCache cache_ = CompileCache::at(KFORGE_TEST_CACHE_DIR);  // nothing here compiles
  FakeDriver fake_;
  std::unique_ptr<Backend> backend_;
  fs::path dir_;
  std::string kernels_path_;
  std::size_t seen_ = 0;
  std::map<std::string, int> baseline_;
  int argument_ = 42;
  void* args_[1] = {&argument_};
};

// ---- cuda ------------------------------------------------------------------------------------
#ifdef FAKE_CUDA

class FakeCuda : public FakeDriverTest {
 protected:
  FakeCuda() : FakeDriverTest("cuda", FAKE_CUDA, "libcuda.so.1", "cubin", "sm_90") {}
};

TEST_F(FakeCuda, DevicesAreTheDriversWithTheirAttributesAndComputeCapability) {
  auto devices = backend_->devices();
  ASSERT_TRUE(devices.ok()) << devices.error().message;
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ(describe((*devices)[0]),
            "cuda 0 'Fake H100' sm_90 units=132 memory=85899345920 l2=52428800 clock=1980000 memory_clock=2619000 "
            "bus=5120 warp=32");
  EXPECT_EQ(describe((*devices)[1]),
            "cuda 1 'Fake RTX 3090' sm_86 units=82 memory=25769803776 l2=6291456 clock=1695000 memory_clock=9751000 "
            "bus=384 warp=32");
  // Every query went to a device handle from cuDeviceGet and an attribute the driver knows.
  const std::string log = calls();
  EXPECT_EQ(log.find(" = "), std::string::npos) << log;
  EXPECT_NE(log.find("cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR, 101) -> 6\n"), std::string::npos) << log;
  EXPECT_EQ(backend_->default_arch(), "sm_90");
}

TEST_F(FakeCuda, OpenDeviceRetainsThePrimaryContextAndMakesANonBlockingStream) {
  auto device = backend_->open_device(0);
  ASSERT_TRUE(device.ok()) << device.error().message;
  const std::string log = calls();
  EXPECT_TRUE(
      log.ends_with("cuDeviceGet(0) -> 100\n"
                    "cuDevicePrimaryCtxRetain(100) -> ctx100\n"
                    "cuCtxSetCurrent(ctx100)\n"
                    "cuStreamCreate(1) -> stream1\n"))
      << log;
  EXPECT_EQ(name((*device)->native_stream()), "stream1");
  EXPECT_EQ((*device)->info().name, "Fake H100");
  EXPECT_FALSE((*device)->dead());

  // A second device: its own context and stream, made current for each call.
  auto other = open(1);
  ASSERT_TRUE(other);
  EXPECT_EQ(name(other->native_stream()), "stream2");
  ASSERT_TRUE(other->synchronize().ok());
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx101)\ncuStreamSynchronize(stream2)\n");
  ASSERT_TRUE((*device)->synchronize().ok());
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuStreamSynchronize(stream1)\n");
  EXPECT_EQ(live("context"), 2);

  // Closing waits for the stream, destroys it, and releases the context.
  device->reset();
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuStreamSynchronize(stream1)\n"
            "cuStreamDestroy_v2(stream1)\n"
            "cuDevicePrimaryCtxRelease_v2(100)\n");
  other.reset();
  EXPECT_EQ(live("context"), 0);
  EXPECT_EQ(live("stream"), 0);
}

TEST_F(FakeCuda, OpenDeviceOutOfRangeOrFailingTouchesNoDevice) {
  for (int index : {5, -1}) {
    auto device = backend_->open_device(index);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().kind, ErrorKind::invalid_input);
    EXPECT_EQ(device.error().message, fmt::format("cuda: no device {} (this machine has 2)", index));
  }
  EXPECT_EQ(calls().find("cuDevicePrimaryCtxRetain"), std::string::npos);

  // A stream that cannot be made: the error names the call, and the retained context is let go.
  fail("cuStreamCreate", 2);
  auto device = backend_->open_device(0);
  EXPECT_EQ(message(device), "cuda device 0: cuStreamCreate: CUDA_ERROR_OUT_OF_MEMORY: out of memory");
  EXPECT_TRUE(calls().ends_with("cuStreamCreate(1) = 2\ncuDevicePrimaryCtxRelease_v2(100)\n"));
  EXPECT_EQ(live("context"), 0);

  // A driver that cannot count its devices: the backend is unavailable.
  fail("cuDeviceGetCount", 3);
  EXPECT_EQ(message(backend_->open_device(0)),
            "cuda: unavailable: cuDeviceGetCount: CUDA_ERROR_NOT_INITIALIZED: initialization error");
}

TEST_F(FakeCuda, MemoryCallsGoToTheDevicesStreamAndMoveTheBytes) {
  auto device = open(0);
  ASSERT_TRUE(device);
  EXPECT_EQ(*device->alloc(0), 0u);
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\n");

  auto ptr = device->alloc(64);
  ASSERT_TRUE(ptr.ok()) << ptr.error().message;
  const DevicePtr p = *ptr;
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuMemAlloc_v2(64) -> mem1\n");

  unsigned char in[64], out[64] = {};
  for (int i = 0; i < 64; ++i) in[i] = static_cast<unsigned char>(3 * i + 1);
  ASSERT_TRUE(device->copy_in(p, in, 64).ok());
  ASSERT_TRUE(device->fill(p + 16, 0xab, 8).ok());
  ASSERT_TRUE(device->copy_out(out, p, 64).ok());
  // Copies wait for the stream before they return; a fill only enqueues.
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuMemcpyHtoDAsync_v2(mem1, host, 64, stream1)\n"
            "cuCtxSetCurrent(ctx100)\n"
            "cuStreamSynchronize(stream1)\n"
            "cuCtxSetCurrent(ctx100)\n"
            "cuMemsetD8Async(mem1+16, 0xab, 8, stream1)\n"
            "cuCtxSetCurrent(ctx100)\n"
            "cuMemcpyDtoHAsync_v2(host, mem1, 64, stream1)\n"
            "cuCtxSetCurrent(ctx100)\n"
            "cuStreamSynchronize(stream1)\n");
  unsigned char want[64];
  std::memcpy(want, in, 64);
  std::memset(want + 16, 0xab, 8);
  EXPECT_EQ(std::memcmp(out, want, 64), 0);

  // Nothing to move: no driver call beyond making the context current.
  ASSERT_TRUE(device->copy_in(p, in, 0).ok());
  ASSERT_TRUE(device->fill(p, 0, 0).ok());
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuCtxSetCurrent(ctx100)\n");

  // Errors name the call (without its _v2), the sizes and the address; they are not sticky.
  EXPECT_EQ(message(device->copy_in(p, in, 128)),
            fmt::format("cuda device 0: cuMemcpyHtoDAsync of 128 bytes to {:#x}: CUDA_ERROR_INVALID_VALUE: invalid "
                        "argument",
                        p));
  fail("cuMemAlloc_v2", 2);
  EXPECT_EQ(message(device->alloc(1024)),
            "cuda device 0: cuMemAlloc of 1024 bytes: CUDA_ERROR_OUT_OF_MEMORY: out of memory");
  EXPECT_FALSE(device->dead());
  calls();

  device->free(p);
  device->free(0);
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuMemFree_v2(mem1)\n");
  EXPECT_EQ(live("mem"), 0);
}

TEST_F(FakeCuda, LoadTakesCubinAndPtxOnlyAndCarriesTheJitLog) {
  auto device = open(0);
  ASSERT_TRUE(device);
  const std::string image = write_image("kernels.cubin", "FAKE-IMAGE k j\n");

  // Not this backend's format, or another backend's binary: refused before the driver is asked.
  auto so = device->load(binary(image, "so"));
  ASSERT_FALSE(so.ok());
  EXPECT_EQ(so.error().kind, ErrorKind::invalid_input);
  EXPECT_EQ(so.error().message, "cuda: cannot load a cuda so binary (" + image + ")");
  EXPECT_EQ(message(device->load(binary(image, "hsaco", "hip"))),
            "cuda: cannot load a hip hsaco binary (" + image + ")");
  EXPECT_EQ(calls(), "");

  auto module = device->load(binary(image));
  ASSERT_TRUE(module.ok()) << module.error().message;
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuModuleLoadDataEx(\"FAKE-IMAGE k j\", ERROR_LOG_BUFFER, ERROR_LOG_BUFFER_SIZE_BYTES=8192) -> module1\n");

  // PTX the JIT rejects: its log comes with the error.
  const std::string ptx = write_image(
      "bad.ptx", "FAKE-IMAGE k\nJIT-ERROR: ptxas fatal   : Unsupported .version 9.9; current version is '9.0'\n");
  EXPECT_EQ(message(device->load(binary(ptx, "ptx"))),
            "cuda device 0: cuModuleLoadDataEx of " + ptx +
                " (ptx for sm_90, this device is sm_90)\n"
                "ptxas fatal   : Unsupported .version 9.9; current version is '9.0': "
                "CUDA_ERROR_INVALID_PTX: a PTX JIT compilation failed");
  const std::string garbage = write_image("garbage.cubin",
                                          "\x7f"
                                          "ELF not for this GPU");
  EXPECT_EQ(message(device->load(binary(garbage))),
            "cuda device 0: cuModuleLoadDataEx of " + garbage +
                " (cubin for sm_90, this device is sm_90): CUDA_ERROR_INVALID_IMAGE: device kernel image is invalid");
  const std::string missing = (dir_ / "missing.cubin").string();
  EXPECT_EQ(message(device->load(binary(missing))), missing + ": cannot open for reading");
  EXPECT_FALSE(device->dead());
  EXPECT_EQ(live("module"), 1);
  calls();

  module->reset();
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuModuleUnload(module1)\n");
  EXPECT_EQ(live("module"), 0);
}

TEST_F(FakeCuda, LaunchLooksKernelsUpOnceAndOptsIntoDynamicSharedMemory) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  ASSERT_EQ(message(device->launch(*module, "k", dims(), args_)), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuModuleGetFunction(module1, k) -> function1\n"
            "cuLaunchKernel(function1, 2x3x4, 32x1x1, 0, stream1, 42)\n");
  // Over 48 KiB needs the opt-in (the fake refuses the launch without it), once per size reached.
  ASSERT_EQ(message(device->launch(*module, "k", dims(65536), args_)), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuFuncSetAttribute(function1, MAX_DYNAMIC_SHARED_SIZE_BYTES, 65536)\n"
            "cuLaunchKernel(function1, 2x3x4, 32x1x1, 65536, stream1, 42)\n");
  ASSERT_EQ(message(device->launch(*module, "k", dims(65536), args_)), "ok");
  ASSERT_EQ(message(device->launch(*module, "k", dims(1000), args_)), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuLaunchKernel(function1, 2x3x4, 32x1x1, 65536, stream1, 42)\n"
            "cuCtxSetCurrent(ctx100)\n"
            "cuLaunchKernel(function1, 2x3x4, 32x1x1, 1000, stream1, 42)\n");
  ASSERT_EQ(message(device->launch(*module, "j", dims(70000), args_)), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuModuleGetFunction(module1, j) -> function2\n"
            "cuFuncSetAttribute(function2, MAX_DYNAMIC_SHARED_SIZE_BYTES, 70000)\n"
            "cuLaunchKernel(function2, 2x3x4, 32x1x1, 70000, stream1, 42)\n");

  EXPECT_EQ(message(device->launch(*module, "nope", dims(), args_)),
            "cuda device 0: cuModuleGetFunction 'nope' in " + kernels_path_ +
                ": CUDA_ERROR_NOT_FOUND: named symbol not found");
  EXPECT_FALSE(device->dead());

  // A module belongs to the device that loaded it.
  auto other = open(1);
  ASSERT_TRUE(other);
  auto refused = other->launch(*module, "k", dims(), args_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::invalid_input);
  EXPECT_EQ(refused.error().message, "cuda device 1: launch of k: the module was loaded by another device");
  EXPECT_EQ(calls(), "");
}

TEST_F(FakeCuda, StickyLaunchFailureKillsTheDevice) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  fail("cuLaunchKernel", 719);  // CUDA_ERROR_LAUNCH_FAILED
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)),
            "cuda device 0: cuLaunchKernel 'k' grid=(2,3,4) block=(32,1,1) smem=0: CUDA_ERROR_LAUNCH_FAILED: "
            "unspecified launch failure; the context is dead: restart the process");
  EXPECT_TRUE(device->dead());
  calls();

  // From now on every call fails without asking the driver, though it would answer again.
  fail("cuLaunchKernel", 0);
  const std::string dead =
      "cuda device 0: the context is dead since CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure; restart the "
      "process";
  char host[16] = {};
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)), dead);
  EXPECT_EQ(message(device->synchronize()), dead);
  EXPECT_EQ(message(device->alloc(16)), dead);
  EXPECT_EQ(message(device->copy_in(0x1000, host, 16)), dead);
  EXPECT_EQ(message(device->copy_out(host, 0x1000, 16)), dead);
  EXPECT_EQ(message(device->fill(0x1000, 0, 16)), dead);
  EXPECT_EQ(message(device->load(binary(kernels_path_))), dead);
  EXPECT_EQ(message(device->create_event()), dead);
  EXPECT_EQ(message(device->flush_l2()), dead);
  device->free(0x1000);
  EXPECT_EQ(calls(), "");
  // Nor does closing it wait on its stream.
  device.reset();
  EXPECT_EQ(calls(), "");
}

TEST_F(FakeCuda, StickyErrorAtSynchronizeKillsTheDevice) {
  auto device = open(0);
  ASSERT_TRUE(device);
  fail("cuStreamSynchronize", 700);  // CUDA_ERROR_ILLEGAL_ADDRESS, found when the stream is waited for
  EXPECT_EQ(message(device->synchronize()),
            "cuda device 0: cuStreamSynchronize: CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was "
            "encountered; the context is dead: restart the process");
  EXPECT_TRUE(device->dead());
}

TEST_F(FakeCuda, NonStickyLaunchFailureLeavesTheDeviceUsable) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  fail("cuLaunchKernel", 701);  // CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)),
            "cuda device 0: cuLaunchKernel 'k' grid=(2,3,4) block=(32,1,1) smem=0: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: "
            "too many resources requested for launch");
  EXPECT_FALSE(device->dead());
  calls();

  fail("cuLaunchKernel", 0);
  ASSERT_EQ(message(device->launch(*module, "k", dims(), args_)), "ok");
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuLaunchKernel(function1, 2x3x4, 32x1x1, 0, stream1, 42)\n");
}

TEST_F(FakeCuda, AnUnknownErrorIsDescribedByNumberAndIsSticky) {
  auto device = open(0);
  ASSERT_TRUE(device);
  // cuda keeps a context only after errors known to leave it usable.
  fail("cuMemAlloc_v2", 12345);
  EXPECT_EQ(message(device->alloc(16)),
            "cuda device 0: cuMemAlloc of 16 bytes: CUresult 12345: unknown error; the context is dead: restart the "
            "process");
  EXPECT_TRUE(device->dead());
}

TEST_F(FakeCuda, EventsRecordOnTheStreamAndReturnTheDriversElapsedTime) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto a = device->create_event();
  auto b = device->create_event();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\ncuEventCreate(0) -> event1\n"
            "cuCtxSetCurrent(ctx100)\ncuEventCreate(0) -> event2\n");
  ASSERT_TRUE(device->record(**a).ok());
  ASSERT_TRUE(device->record(**b).ok());
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\ncuEventRecord(event1, stream1)\n"
            "cuCtxSetCurrent(ctx100)\ncuEventRecord(event2, stream1)\n");
  auto ms = device->elapsed_ms(**a, **b);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_EQ(*ms, 1.25);  // the fake's clock moves 1.25 ms per record
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuEventSynchronize(event2)\n"
            "cuEventElapsedTime_v2(event1, event2) -> 1.25\n");

  auto unrecorded = device->create_event();
  ASSERT_TRUE(unrecorded.ok());
  EXPECT_EQ(message(device->elapsed_ms(**a, **unrecorded)),
            "cuda device 0: cuEventElapsedTime: CUDA_ERROR_INVALID_HANDLE: invalid resource handle");
  EXPECT_FALSE(device->dead());

  // Events belong to the device that made them.
  auto other = open(1);
  ASSERT_TRUE(other);
  EXPECT_EQ(message(other->record(**a)), "cuda device 1: the event was created by another device");
  EXPECT_EQ(message(other->elapsed_ms(**a, **b)), "cuda device 1: the events were created by another device");
  EXPECT_EQ(calls(), "");

  a->reset();
  EXPECT_EQ(calls(), "cuCtxSetCurrent(ctx100)\ncuEventDestroy_v2(event1)\n");
  b->reset();
  unrecorded->reset();
  EXPECT_EQ(live("event"), 0);
}

TEST_F(FakeCuda, FlushL2WritesTwiceTheL2AndResetsPersistingLines) {
  auto device = open(0);
  ASSERT_TRUE(device);
  ASSERT_EQ(message(device->flush_l2()), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuMemAlloc_v2(104857600) -> mem1\n"
            "cuMemsetD8Async(mem1, 0xff, 104857600, stream1)\n"
            "cuCtxResetPersistingL2Cache()\n");
  // The buffer is kept, and written with another byte each time.
  fail("cuCtxResetPersistingL2Cache", 801);  // CUDA_ERROR_NOT_SUPPORTED: no persisting L2 before sm_80
  ASSERT_EQ(message(device->flush_l2()), "ok");
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuMemsetD8Async(mem1, 0x00, 104857600, stream1)\n"
            "cuCtxResetPersistingL2Cache() = 801\n");
  device.reset();
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuStreamSynchronize(stream1)\n"
            "cuMemFree_v2(mem1)\n"
            "cuStreamDestroy_v2(stream1)\n"
            "cuDevicePrimaryCtxRelease_v2(100)\n");
  EXPECT_EQ(live("mem"), 0);
}

// A driver older than 12.8 exports cuEventElapsedTime without the _v2. Its fake has the same
// soname as the current one, so this runs in a process of its own (ctest runs each test so).
class FakeCudaOldDriver : public FakeDriverTest {
 protected:
  FakeCudaOldDriver() : FakeDriverTest("cuda", FAKE_CUDA_OLD, "libcuda.so.1", "cubin", "sm_90") {}
};

TEST_F(FakeCudaOldDriver, EventElapsedFallsBackToTheOlderSymbol) {
  ASSERT_EQ(dlsym(fake_.library, "cuEventElapsedTime_v2"), nullptr);
  ASSERT_NE(dlsym(fake_.library, "cuEventElapsedTime"), nullptr);
  auto device = open(0);
  ASSERT_TRUE(device);
  auto a = device->create_event();
  auto b = device->create_event();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(device->record(**a).ok() && device->record(**b).ok());
  calls();
  auto ms = device->elapsed_ms(**a, **b);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_EQ(*ms, 1.25);
  EXPECT_EQ(calls(),
            "cuCtxSetCurrent(ctx100)\n"
            "cuEventSynchronize(event2)\n"
            "cuEventElapsedTime(event1, event2) -> 1.25\n");
}

#endif  // FAKE_CUDA

// ---- hip -------------------------------------------------------------------------------------
#ifdef FAKE_HIP

class FakeHip : public FakeDriverTest {
 protected:
  FakeHip() : FakeDriverTest("hip", FAKE_HIP, "libamdhip64.so.6", "hsaco", "gfx90a") {}
};

TEST_F(FakeHip, DevicesAreTheRuntimesWithTheirAttributes) {
  auto devices = backend_->devices();
  ASSERT_TRUE(devices.ok()) << devices.error().message;
  ASSERT_EQ(devices->size(), 2u);
  // The arch is not read from the device (hip_backend.cpp's arch_of()).
  EXPECT_EQ(describe((*devices)[0]),
            "hip 0 'Fake MI300X' unknown units=304 memory=206158430208 l2=3145728 clock=2100000 memory_clock=1300000 "
            "bus=8192 warp=64");
  EXPECT_EQ(describe((*devices)[1]),
            "hip 1 'Fake MI210' unknown units=104 memory=68719476736 l2=8388608 clock=1700000 memory_clock=1600000 "
            "bus=4096 warp=64");
  const std::string log = calls();
  EXPECT_EQ(log.find(" = "), std::string::npos) << log;
  EXPECT_EQ(backend_->default_arch(), "gfx90a");
}

TEST_F(FakeHip, OpenDeviceSetsTheDeviceAndMakesANonBlockingStream) {
  auto device = backend_->open_device(0);
  ASSERT_TRUE(device.ok()) << device.error().message;
  const std::string log = calls();
  EXPECT_TRUE(log.ends_with("hipSetDevice(0)\nhipStreamCreateWithFlags(1) -> stream1\n")) << log;
  EXPECT_EQ(name((*device)->native_stream()), "stream1");
  EXPECT_EQ((*device)->info().name, "Fake MI300X");

  auto other = open(1);
  ASSERT_TRUE(other);
  EXPECT_EQ(name(other->native_stream()), "stream2");
  ASSERT_TRUE(other->synchronize().ok());
  EXPECT_EQ(calls(), "hipSetDevice(1)\nhipStreamSynchronize(stream2)\n");
  ASSERT_TRUE((*device)->synchronize().ok());
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipStreamSynchronize(stream1)\n");

  device->reset();
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipStreamSynchronize(stream1)\nhipStreamDestroy(stream1)\n");
  other.reset();
  EXPECT_EQ(live("stream"), 0);
}

TEST_F(FakeHip, OpenDeviceOutOfRangeOrFailingTouchesNoDevice) {
  for (int index : {5, -1}) {
    auto device = backend_->open_device(index);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().kind, ErrorKind::invalid_input);
    EXPECT_EQ(device.error().message, fmt::format("hip: no device {} (this machine has 2)", index));
  }
  EXPECT_EQ(calls().find("hipStreamCreateWithFlags"), std::string::npos);

  fail("hipStreamCreateWithFlags", 2);
  EXPECT_EQ(message(backend_->open_device(0)),
            "hip device 0: hipStreamCreateWithFlags: hipErrorOutOfMemory: out of memory");

  fail("hipGetDeviceCount", 100);  // hipErrorNoDevice
  EXPECT_EQ(message(backend_->open_device(0)), "hip: unavailable: the HIP runtime sees no AMD GPU");
}

TEST_F(FakeHip, MemoryCallsGoToTheDevicesStreamAndMoveTheBytes) {
  auto device = open(0);
  ASSERT_TRUE(device);
  EXPECT_EQ(*device->alloc(0), 0u);
  EXPECT_EQ(calls(), "hipSetDevice(0)\n");

  auto ptr = device->alloc(64);
  ASSERT_TRUE(ptr.ok()) << ptr.error().message;
  const DevicePtr p = *ptr;
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipMalloc(64) -> mem1\n");

  unsigned char in[64], out[64] = {};
  for (int i = 0; i < 64; ++i) in[i] = static_cast<unsigned char>(3 * i + 1);
  ASSERT_EQ(message(device->copy_in(p, in, 64)), "ok");
  ASSERT_EQ(message(device->fill(p + 16, 0xab, 8)), "ok");
  ASSERT_EQ(message(device->copy_out(out, p, 64)), "ok");
  // The fake checks each copy's direction against where its source and destination are.
  EXPECT_EQ(calls(),
            "hipSetDevice(0)\n"
            "hipMemcpyAsync(mem1, host, 64, HostToDevice, stream1)\n"
            "hipSetDevice(0)\n"
            "hipStreamSynchronize(stream1)\n"
            "hipSetDevice(0)\n"
            "hipMemsetAsync(mem1+16, 0xab, 8, stream1)\n"
            "hipSetDevice(0)\n"
            "hipMemcpyAsync(host, mem1, 64, DeviceToHost, stream1)\n"
            "hipSetDevice(0)\n"
            "hipStreamSynchronize(stream1)\n");
  unsigned char want[64];
  std::memcpy(want, in, 64);
  std::memset(want + 16, 0xab, 8);
  EXPECT_EQ(std::memcmp(out, want, 64), 0);

  ASSERT_TRUE(device->copy_out(out, p, 0).ok());
  EXPECT_EQ(calls(), "hipSetDevice(0)\n");

  EXPECT_EQ(
      message(device->copy_out(out, p, 128)),
      fmt::format("hip device 0: hipMemcpyAsync of 128 bytes from {:#x}: hipErrorInvalidValue: invalid argument", p));
  fail("hipMalloc", 2);
  EXPECT_EQ(message(device->alloc(1024)), "hip device 0: hipMalloc of 1024 bytes: hipErrorOutOfMemory: out of memory");
  EXPECT_FALSE(device->dead());
  calls();

  device->free(p);
  device->free(0);
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipFree(mem1)\n");
  EXPECT_EQ(live("mem"), 0);
}

TEST_F(FakeHip, LoadTakesCodeObjectsOnly) {
  auto device = open(0);
  ASSERT_TRUE(device);
  const std::string image = write_image("kernels.hsaco", "FAKE-IMAGE k j\n");

  auto so = device->load(binary(image, "so"));
  ASSERT_FALSE(so.ok());
  EXPECT_EQ(so.error().kind, ErrorKind::invalid_input);
  EXPECT_EQ(so.error().message, "hip: cannot load a hip so binary (" + image + ")");
  EXPECT_EQ(message(device->load(binary(image, "ptx"))), "hip: cannot load a hip ptx binary (" + image + ")");
  EXPECT_EQ(message(device->load(binary(image, "cubin", "cuda"))),
            "hip: cannot load a cuda cubin binary (" + image + ")");
  EXPECT_EQ(calls(), "");

  auto module = device->load(binary(image));
  ASSERT_TRUE(module.ok()) << module.error().message;
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipModuleLoadData(\"FAKE-IMAGE k j\") -> module1\n");

  const std::string garbage = write_image("garbage.hsaco",
                                          "\x7f"
                                          "ELF not for this GPU");
  EXPECT_EQ(message(device->load(binary(garbage))),
            "hip device 0: hipModuleLoadData of " + garbage +
                " (code object for gfx90a, this device is unknown): hipErrorInvalidImage: device kernel image is "
                "invalid");
  EXPECT_FALSE(device->dead());
  calls();

  module->reset();
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipModuleUnload(module1)\n");
  EXPECT_EQ(live("module"), 0);
}

TEST_F(FakeHip, LaunchLooksKernelsUpOnceWithNoSharedMemoryOptIn) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  ASSERT_EQ(message(device->launch(*module, "k", dims(), args_)), "ok");
  EXPECT_EQ(calls(),
            "hipSetDevice(0)\n"
            "hipModuleGetFunction(module1, k) -> function1\n"
            "hipModuleLaunchKernel(function1, 2x3x4, 32x1x1, 0, stream1, 42)\n");
  ASSERT_EQ(message(device->launch(*module, "k", dims(65536), args_)), "ok");
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipModuleLaunchKernel(function1, 2x3x4, 32x1x1, 65536, stream1, 42)\n");

  EXPECT_EQ(
      message(device->launch(*module, "nope", dims(), args_)),
      "hip device 0: hipModuleGetFunction 'nope' in " + kernels_path_ + ": hipErrorNotFound: named symbol not found");
  EXPECT_FALSE(device->dead());

  // A module belongs to its device: another ordinal refuses it, the same ordinal opened again takes it.
  auto other = open(1);
  ASSERT_TRUE(other);
  EXPECT_EQ(message(other->launch(*module, "k", dims(), args_)),
            "hip device 1: launch of k: the module was loaded by another device");
  auto twin = open(0);
  ASSERT_TRUE(twin);
  ASSERT_EQ(message(twin->launch(*module, "k", dims(), args_)), "ok");
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipModuleLaunchKernel(function1, 2x3x4, 32x1x1, 0, stream3, 42)\n");
}

TEST_F(FakeHip, StickyLaunchFailureKillsTheDevice) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  fail("hipModuleLaunchKernel", 719);  // hipErrorLaunchFailure
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)),
            "hip device 0: hipModuleLaunchKernel 'k' grid=(2,3,4) block=(32,1,1) smem=0: hipErrorLaunchFailure: "
            "unspecified launch failure; the device is dead: restart the process");
  EXPECT_TRUE(device->dead());
  calls();

  fail("hipModuleLaunchKernel", 0);
  const std::string dead =
      "hip device 0: the device is dead since hipErrorLaunchFailure: unspecified launch failure; restart the process";
  char host[16] = {};
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)), dead);
  EXPECT_EQ(message(device->synchronize()), dead);
  EXPECT_EQ(message(device->alloc(16)), dead);
  EXPECT_EQ(message(device->copy_in(0x1000, host, 16)), dead);
  EXPECT_EQ(message(device->copy_out(host, 0x1000, 16)), dead);
  EXPECT_EQ(message(device->fill(0x1000, 0, 16)), dead);
  EXPECT_EQ(message(device->load(binary(kernels_path_))), dead);
  EXPECT_EQ(message(device->create_event()), dead);
  EXPECT_EQ(message(device->flush_l2()), dead);
  device->free(0x1000);
  EXPECT_EQ(calls(), "");
  device.reset();
  EXPECT_EQ(calls(), "");
}

TEST_F(FakeHip, StickyErrorAtSynchronizeKillsTheDevice) {
  auto device = open(0);
  ASSERT_TRUE(device);
  fail("hipStreamSynchronize", 700);  // hipErrorIllegalAddress
  EXPECT_EQ(message(device->synchronize()),
            "hip device 0: hipStreamSynchronize: hipErrorIllegalAddress: an illegal memory access was encountered; "
            "the device is dead: restart the process");
  EXPECT_TRUE(device->dead());
}

TEST_F(FakeHip, NonStickyLaunchFailureLeavesTheDeviceUsable) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto module = load_kernels(*device);
  ASSERT_TRUE(module);

  fail("hipModuleLaunchKernel", 701);  // hipErrorLaunchOutOfResources
  EXPECT_EQ(message(device->launch(*module, "k", dims(), args_)),
            "hip device 0: hipModuleLaunchKernel 'k' grid=(2,3,4) block=(32,1,1) smem=0: "
            "hipErrorLaunchOutOfResources: too many resources requested for launch");
  EXPECT_FALSE(device->dead());
  calls();

  fail("hipModuleLaunchKernel", 0);
  ASSERT_EQ(message(device->launch(*module, "k", dims(), args_)), "ok");
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipModuleLaunchKernel(function1, 2x3x4, 32x1x1, 0, stream1, 42)\n");
}

TEST_F(FakeHip, AnUnknownErrorIsDescribedByNumberAndIsNotSticky) {
  auto device = open(0);
  ASSERT_TRUE(device);
  // hip counts only the errors it knows to be fatal as sticky.
  fail("hipMalloc", 12345);
  EXPECT_EQ(message(device->alloc(16)), "hip device 0: hipMalloc of 16 bytes: hipError_t 12345: unknown error");
  EXPECT_FALSE(device->dead());
}

TEST_F(FakeHip, EventsRecordOnTheStreamAndReturnTheRuntimesElapsedTime) {
  auto device = open(0);
  ASSERT_TRUE(device);
  auto a = device->create_event();
  auto b = device->create_event();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipEventCreate() -> event1\nhipSetDevice(0)\nhipEventCreate() -> event2\n");
  ASSERT_TRUE(device->record(**a).ok());
  ASSERT_TRUE(device->record(**b).ok());
  EXPECT_EQ(calls(),
            "hipSetDevice(0)\nhipEventRecord(event1, stream1)\n"
            "hipSetDevice(0)\nhipEventRecord(event2, stream1)\n");
  auto ms = device->elapsed_ms(**a, **b);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_EQ(*ms, 1.25);
  EXPECT_EQ(calls(),
            "hipSetDevice(0)\n"
            "hipEventSynchronize(event2)\n"
            "hipEventElapsedTime(event1, event2) -> 1.25\n");

  auto unrecorded = device->create_event();
  ASSERT_TRUE(unrecorded.ok());
  EXPECT_EQ(message(device->elapsed_ms(**a, **unrecorded)),
            "hip device 0: hipEventElapsedTime: hipErrorInvalidHandle: invalid resource handle");

  auto other = open(1);
  ASSERT_TRUE(other);
  EXPECT_EQ(message(other->record(**a)), "hip device 1: the event was created by another device");
  EXPECT_EQ(message(other->elapsed_ms(**a, **b)), "hip device 1: the events were created by another device");
  EXPECT_EQ(calls(), "");

  a->reset();
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipEventDestroy(event1)\n");
  b->reset();
  unrecorded->reset();
  EXPECT_EQ(live("event"), 0);
}

TEST_F(FakeHip, FlushL2WritesAtLeast8MiBAndHasNoPersistingReset) {
  // Twice device 0's 3 MiB L2 is under the floor.
  auto device = open(0);
  ASSERT_TRUE(device);
  ASSERT_EQ(message(device->flush_l2()), "ok");
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipMalloc(8388608) -> mem1\nhipMemsetAsync(mem1, 0xff, 8388608, stream1)\n");
  ASSERT_EQ(message(device->flush_l2()), "ok");
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipMemsetAsync(mem1, 0x00, 8388608, stream1)\n");
  device.reset();
  EXPECT_EQ(calls(), "hipSetDevice(0)\nhipStreamSynchronize(stream1)\nhipFree(mem1)\nhipStreamDestroy(stream1)\n");
  EXPECT_EQ(live("mem"), 0);
}

#endif  // FAKE_HIP

}  // namespace
