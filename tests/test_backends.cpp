// The backends' compilers on this machine (no GPU needed): NVRTC for every CUDA seed, hiprtc for
// the same seeds through the HIP prelude, the host compiler for the cuBLAS baselines, the shared
// cache, and what devices() says without GPUs.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiler_bridge/compiler_bridge.hpp"
#include "evaluator/evaluator.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

const std::string kSource = KFORGE_SOURCE_DIR;

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-backends-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    cache_.emplace(CompileCache::open(dir_.string()).value());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Backend> backend(const std::string& name) {
    auto b = make_backend(name, *cache_);
    EXPECT_TRUE(b.ok());
    return std::move(*b);
  }
  // Every CUDA seed of the shipped tasks, with its task's signature appended, as a request.
  std::vector<CompileRequest> cuda_seeds() {
    std::vector<CompileRequest> out;
    const std::vector<Task> tasks = load_tasks(kSource + "/tasks").value();
    for (const auto& task : tasks)
      for (const auto& path : task.seed_paths) {
        if (fs::path(path).filename().string().rfind("cuda_", 0) != 0) continue;
        auto candidate = parse_candidate(read_file(path).value(), path).value();
        const bool workspace = candidate.workspace_bytes.has_value();
        out.push_back({candidate.source + gpu_entry_declaration(task, candidate.entry, workspace),
                       fs::path(path).filename().string(), candidate.param_bindings(), ""});
      }
    return out;
  }

  fs::path dir_;
  std::optional<CompileCache> cache_;
};

TEST_F(BackendTest, RegistryKnowsEveryBackendAndRefusesOthers) {
  std::vector<std::string> names;
  for (const auto& b : make_backends(*cache_)) names.push_back(b->name());
  EXPECT_EQ(names, (std::vector<std::string>{"cpu", "cuda", "hip", "null"}));
  auto unknown = make_backend("metal", *cache_);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown backend 'metal' (known: cpu, cuda, hip, null)"), std::string::npos);
}

TEST_F(BackendTest, NvrtcCompilesEveryCudaSeedToCubinAndPtx) {
  auto cuda = backend("cuda");
  if (!cuda->compiler_status()) GTEST_SKIP() << cuda->compiler_status().error().message;
  const auto seeds = cuda_seeds();
  ASSERT_GE(seeds.size(), 3u);
  int using_shared_memory = 0;
  for (auto request : seeds)
    for (const char* arch : {"sm_80", "sm_90", "compute_90"}) {
      request.arch = arch;
      auto binary = cuda->compile(request);
      ASSERT_TRUE(binary.ok()) << request.file_name << " " << arch << ": " << binary.error().message;
      EXPECT_GT(binary->size_bytes, 0);
      EXPECT_TRUE(fs::exists(binary->path));
      if (std::string(arch).rfind("sm_", 0) == 0) {
        EXPECT_EQ(binary->format, "cubin");
        EXPECT_GT(binary->usage.registers, 0) << "ptxas -v resource usage, parsed without a GPU";
        EXPECT_GE(binary->usage.shared_bytes, 0) << "parsed, even when none is used";
        using_shared_memory += binary->usage.shared_bytes > 0;
        EXPECT_EQ(binary->usage.spill_bytes, 0);
      } else {
        EXPECT_EQ(binary->format, "ptx");
        EXPECT_NE(read_file(binary->path)->find(".target sm_90"), std::string::npos);
      }
    }
  EXPECT_GT(using_shared_memory, 0) << "the reduction seeds use shared memory";
}

// Every task's baseline.cuda is host C++ that finds cuBLAS at run time: it compiles without the
// toolkit, exports what the worker calls, and without a GPU its open says why it cannot run.
TEST_F(BackendTest, EveryCublasBaselineCompilesForTheHostAndSaysWhyItCannotOpenWithoutAGpu) {
  const auto host = make_host_backend({.compiler = "", .cache_dir = dir_.string()});
  const bool gpu_here = backend("cuda")->devices().ok();
  int baselines = 0;
  const std::vector<Task> tasks = load_tasks(kSource + "/tasks").value();
  for (const Task& task : tasks) {
    if (task.cuda_baseline_path.empty()) continue;
    ++baselines;
    auto binary = compile_gpu_host_baseline(*host, task);
    ASSERT_TRUE(binary.ok()) << task.id() << ": " << binary.error().message;
    void* library = dlopen(binary->path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(library, nullptr) << dlerror();
    EXPECT_NE(dlsym(library, "kforge_call"), nullptr) << task.id();
    auto open = reinterpret_cast<const char* (*)(void*)>(dlsym(library, "kforge_baseline_open"));
    ASSERT_NE(open, nullptr) << task.id();
    if (!gpu_here) {
      const char* why = open(nullptr);
      ASSERT_NE(why, nullptr) << task.id() << ": opened cuBLAS without a GPU";
      EXPECT_NE(std::string(why).find("cu"), std::string::npos) << why;  // "cuBLAS not found", "cublasCreate: ..."
    }
    dlclose(library);
  }
  EXPECT_EQ(baselines, 3) << "llm/gemv, llm/gemm_flat and llm/gemm_prefill name cuBLAS";
}

TEST_F(BackendTest, ACublasBaselineThatBreaksTheContractIsACompileError) {
  const auto host = make_host_backend({.compiler = "", .cache_dir = dir_.string()});
  Task task = find_task(kSource + "/tasks", "llm/gemv").value();
  const std::string entry = "// @kforge entry: gemv_cublas\n";
  const std::string open = "extern \"C\" const char* kforge_baseline_open(void*) { return nullptr; }\n";
  const std::pair<std::string, std::string> broken[] = {
      {entry + open + "extern \"C\" const char* gemv_cublas(const float*, const float*, float*, int) { return 0; }\n",
       "gemv_cublas"},  // an argument short of the task's
      {entry + open + "extern \"C\" void gemv_cublas(const float*, const float*, float*, int, int) {}\n",
       "gemv_cublas"},  // returns no error
      {entry + "extern \"C\" const char* gemv_cublas(const float*, const float*, float*, int, int) { return 0; }\n",
       "kforge_baseline_open"}};  // nothing to open it
  for (const auto& [source, named] : broken) {
    task.cuda_baseline_path = (dir_ / "cuda_broken.cpp").string();
    std::ofstream(task.cuda_baseline_path) << source;
    auto binary = compile_gpu_host_baseline(*host, task);
    ASSERT_FALSE(binary.ok()) << source;
    EXPECT_EQ(binary.error().kind, ErrorKind::compile);
    EXPECT_NE(binary.error().message.find(named), std::string::npos) << binary.error().message;
  }
}

TEST_F(BackendTest, CudaSyntaxErrorReturnsTheLogWithItsLine) {
  auto cuda = backend("cuda");
  if (!cuda->compiler_status()) GTEST_SKIP() << cuda->compiler_status().error().message;
  auto binary =
      cuda->compile({"extern \"C\" __global__ void k(float* y) {\n  y[0] = 1.0f\n}\n", "bad.cu", {}, "sm_90"});
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.error().kind, ErrorKind::compile);
  EXPECT_NE(binary.error().message.find("bad.cu(3): error: expected a \";\""), std::string::npos)
      << binary.error().message;
}

TEST_F(BackendTest, CudaWrongSignatureForTheTaskIsACompileError) {
  auto cuda = backend("cuda");
  if (!cuda->compiler_status()) GTEST_SKIP() << cuda->compiler_status().error().message;
  auto task = find_task(kSource + "/tasks", "llm/gemv").value();
  const std::string source = "extern \"C\" __global__ void gemv_f32(const float* W, float* y, int N) {}\n";
  auto binary = cuda->compile({source + gpu_entry_declaration(task, "gemv_f32"), "k.cu", {}, "sm_90"});
  ASSERT_FALSE(binary.ok());
  EXPECT_NE(binary.error().message.find("\"gemv_f32\" has \"C\" linkage"), std::string::npos) << binary.error().message;
}

TEST_F(BackendTest, UnknownArchIsRefusedBeforeCompiling) {
  auto cuda = backend("cuda");
  if (!cuda->compiler_status()) GTEST_SKIP() << cuda->compiler_status().error().message;
  auto binary = cuda->compile({"extern \"C\" __global__ void k() {}\n", "k.cu", {}, "gfx90a"});
  ASSERT_FALSE(binary.ok());
  EXPECT_NE(binary.error().message.find("'gfx90a' is not a CUDA arch"), std::string::npos);
}

TEST_F(BackendTest, HiprtcCompilesEveryCudaSeedThroughThePrelude) {
  auto hip = backend("hip");
  if (!hip->compiler_status()) GTEST_SKIP() << hip->compiler_status().error().message;
  for (auto request : cuda_seeds()) {
    request.arch = "gfx90a";
    auto binary = hip->compile(request);
    ASSERT_TRUE(binary.ok()) << request.file_name << ": " << binary.error().message;
    EXPECT_EQ(binary->format, "hsaco");
    EXPECT_EQ(read_file(binary->path)->substr(1, 3), "ELF");
  }
}

TEST_F(BackendTest, HiprtcCrashOnAnUnsupportedArchIsACompileError) {
  auto hip = backend("hip");
  if (!hip->compiler_status()) GTEST_SKIP() << hip->compiler_status().error().message;
  // Debian's ROCm 5.2 aborts inside hiprtc for gfx942; newer ROCms compile it. Either way this
  // process lives on and gets an answer.
  auto binary = hip->compile({"extern \"C\" __global__ void k(float* y) { y[0] = 1.0f; }\n", "k.hip", {}, "gfx942"});
  if (!binary.ok()) {
    EXPECT_EQ(binary.error().kind, ErrorKind::compile);
    EXPECT_NE(binary.error().message.find("compiling for gfx942"), std::string::npos) << binary.error().message;
  }
  auto again = hip->compile({"extern \"C\" __global__ void k(float* y) { y[0] = 2.0f; }\n", "k.hip", {}, "gfx90a"});
  EXPECT_TRUE(again.ok()) << "the backend still works after the crash";
}

TEST_F(BackendTest, SecondIdenticalCompileIsACacheHit) {
  for (const char* name : {"cpu", "cuda", "hip"}) {
    auto b = backend(name);
    if (!b->compiler_status()) continue;
    const std::string source = std::string(name) == "cpu" ? "extern \"C\" int f() { return V; }\n"
                                                          : "extern \"C\" __global__ void k(int* y) { y[0] = V; }\n";
    auto first = b->compile({source, "k.cu", {{"V", 7}}, ""});
    ASSERT_TRUE(first.ok()) << name << ": " << first.error().message;
    auto second = b->compile({source, "k.cu", {{"V", 7}}, ""});
    ASSERT_TRUE(second.ok());
    EXPECT_FALSE(first->cache_hit);
    EXPECT_TRUE(second->cache_hit) << name;
    EXPECT_EQ(second->path, first->path);
    EXPECT_EQ(second->log, first->log) << "the log (and the usage parsed from it) comes back from the cache";
    EXPECT_FALSE(b->compile({source, "k.cu", {{"V", 8}}, ""})->cache_hit);
  }
  auto usage = cache_->usage();
  EXPECT_EQ(usage["cpu"].files, 2);
  std::ofstream(dir_ / "not-kforge.txt") << "someone else's file";
  ASSERT_TRUE(cache_->clear().ok());
  EXPECT_TRUE(cache_->usage().empty());
  EXPECT_TRUE(fs::exists(dir_ / "not-kforge.txt")) << "clear removes kforge's binaries only";
}

TEST_F(BackendTest, DevicesSayWhyThereAreNone) {
  auto cpu = backend("cpu")->devices();
  ASSERT_TRUE(cpu.ok());
  ASSERT_EQ(cpu->size(), 1u);
  EXPECT_GT(cpu->front().compute_units, 0);
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver) {
    dlclose(driver);
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  }
  auto cuda = backend("cuda")->devices();
  ASSERT_FALSE(cuda.ok());
  EXPECT_NE(cuda.error().message.find("libcuda.so.1 not found"), std::string::npos) << cuda.error().message;
}

TEST_F(BackendTest, NullBackendCompilesNothingButAnswers) {
  auto null = backend("null");
  EXPECT_TRUE(null->compiler_status().ok());
  auto binary = null->compile({"anything", "k", {}, ""});
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ(binary->backend, "null");
  EXPECT_EQ(null->devices()->size(), 1u);
}

TEST_F(BackendTest, OpenDeviceOnCpuAndNullIsRefused) {
  for (const char* name : {"cpu", "null"}) {
    auto device = backend(name)->open_device(0);
    ASSERT_FALSE(device.ok()) << name;
    EXPECT_NE(device.error().message.find(std::string(name) + ": no device to open"), std::string::npos)
        << device.error().message;
  }
}

TEST_F(BackendTest, OpenDeviceWithoutADriverSaysWhy) {
  for (const char* name : {"cuda", "hip"}) {
    auto b = backend(name);
    auto devices = b->devices();
    if (devices) continue;  // a machine with this GPU: tests/test_gpu.cpp opens it
    auto device = b->open_device(0);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().kind, ErrorKind::io);
    EXPECT_EQ(device.error().message, std::string(name) + ": unavailable: " + devices.error().message);
  }
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver) {
    dlclose(driver);
    return;
  }
  auto device = backend("cuda")->open_device(0);
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.error().message.find("cuda: unavailable: libcuda.so.1 not found"), std::string::npos)
      << device.error().message;
}

}  // namespace
