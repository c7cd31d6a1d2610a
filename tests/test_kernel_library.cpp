// KernelLibrary: the lookup chain (exact, nearest dynamic dim, nearest device, baseline), the
// kernel's checks, misses, explain(), threads, and kernels that compute the right thing.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>
#include <vector>

#include "compiler_bridge/compiler_bridge.hpp"
#include "inference/kernel_library.hpp"
#include "kernels_db/kernels_db.hpp"
#include "tests/publish_kernel.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

const std::string kTestTasks = std::string(KFORGE_SOURCE_DIR) + "/tests/data/tasks";
const std::string kTasks = std::string(KFORGE_SOURCE_DIR) + "/tasks";

std::string read(const std::string& path) {
  auto text = read_file(path);
  EXPECT_TRUE(text.ok()) << path;
  return text ? *text : "";
}

// A "tuned" tiny/scale kernel: right, and a different source (so a different key) from the baseline.
std::string scale_tuned(const std::string& note = "tuned") {
  return "// @kforge entry: scale_f32\n// @kforge about: " + note +
         "\nextern \"C\" void scale_f32(const float* x, float* y, int N, float alpha) {\n"
         "#pragma omp simd\n  for (int i = 0; i < N; ++i) y[i] = x[i] * alpha;\n}\n";
}

class KernelLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-lib-" + std::to_string(getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "k.db").string();
    auto store = KernelStore::open(path_);  // an empty library
    ASSERT_TRUE(store.ok()) << store.error().message;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string publish(const std::string& op, const std::string& device, const std::string& source,
                      const std::string& origin, const std::vector<std::pair<std::string, double>>& shapes,
                      const std::string& dynamic_dim = "") {
    return publish_kernel(path_, op, device, source, origin, shapes, dynamic_dim);
  }

  KernelLibrary open(const std::string& tasks_dir, const std::string& device = "") {
    KernelLibraryOptions options;
    options.tasks_dir = tasks_dir;
    options.device_key = device;
    options.compiler.cache_dir = KFORGE_TEST_CACHE_DIR;
    auto library = KernelLibrary::open(path_, options);
    EXPECT_TRUE(library.ok()) << library.error().message;
    return std::move(*library);
  }

  std::int64_t misses(const std::string& problem_key) {
    auto store = KernelStore::open(path_, true);
    auto rows = store->misses();
    EXPECT_TRUE(rows.ok());
    std::int64_t n = 0;
    for (const auto& [row, count] : *rows)
      if (row.problem_key == problem_key) n += count;
    return n;
  }

  // Runs tiny/scale through `kernel` on n elements; true when y = alpha * x exactly.
  static bool scales_right(const Kernel& kernel, int n) {
    std::vector<float> x(n), y(n, NAN);
    for (int i = 0; i < n; ++i) x[i] = 0.25f * static_cast<float>(i % 17) - 2;
    float alpha = -1.5f;
    kernel({x.data(), y.data(), &n, &alpha});
    for (int i = 0; i < n; ++i)
      if (y[i] != alpha * x[i]) return false;
    return true;
  }

  fs::path dir_;
  std::string path_;
  const std::string here_ = "cpu:" + host_cpu_name();
};

TEST_F(KernelLibraryTest, ExactHitRunsTheTunedKernel) {
  const std::string key = publish("tiny/scale", here_, scale_tuned(), "tuned_scale.cpp", {{"N=1024", 0.5}});
  KernelLibrary lib = open(kTestTasks);
  EXPECT_EQ(lib.size(), 1u);
  auto k = lib.resolve("tiny/scale", {{"N", 1024}}, "f32");
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::exact);
  EXPECT_EQ(k->info().key, key);
  EXPECT_EQ(k->info().origin, "tuned_scale.cpp");
  EXPECT_TRUE(scales_right(*k, 1024));
  EXPECT_TRUE(scales_right(*k, 7));  // any N: a kernel is a function of its arguments
  const std::string why = lib.explain("tiny/scale", {{"N", 1024}});
  EXPECT_EQ(why.rfind("exact: kernel " + key.substr(0, 12) + " (tuned_scale.cpp), 2.00x its baseline, 0.50 us at N=1024, published 20", 0), 0u)
      << why;
  // The second resolve is the same kernel, from the map.
  auto again = lib.resolve("tiny/scale", {{"N", 1024}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->function(), k->function());
  EXPECT_EQ(&again->info(), &k->info());
}

// Kernels are built with -fopenmp and this program does not link the OpenMP runtime: the first
// kernel brings it in, and destroying the library must not unmap it under its worker threads
// (which crashed a process at exit before KernelLibrary pinned it).
TEST_F(KernelLibraryTest, OpenMpRuntimeOutlivesTheLibrary) {
  publish("llm/gemv", here_, read(kTasks + "/llm/gemv/seeds/cpu_omp_simd.cpp"), "cpu_omp_simd.cpp",
          {{"K=256,N=256", 5.0}});
  {
    KernelLibrary library = open(kTasks);
    auto gemv = library.resolve("llm/gemv", {{"N", 256}, {"K", 256}});
    ASSERT_TRUE(gemv.ok()) << gemv.error().message;
    EXPECT_EQ(gemv->info().match, KernelMatch::exact);
    std::vector<float> w(256 * 256, 1.0f), x(256, 0.5f), y(256);
    int n = 256, k = 256;
    for (int i = 0; i < 20; ++i) (*gemv)({w.data(), x.data(), y.data(), &n, &k});  // N*K past PAR_THRESHOLD: threads
    EXPECT_EQ(y[255], 128.0f);
    void* gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!gomp) GTEST_SKIP() << "the kernels do not use libgomp (another compiler's OpenMP)";
    dlclose(gomp);
  }
  void* gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(gomp, nullptr) << "libgomp was unloaded with the library";
  if (gomp) dlclose(gomp);
}

TEST_F(KernelLibraryTest, NearestDynamicDim) {
  const std::string simd = read(kTasks + "/llm/rmsnorm/seeds/cpu_omp_simd.cpp");
  const std::string key =
      publish("llm/rmsnorm", here_, simd, "cpu_omp_simd.cpp", {{"M=16,N=64", 1.0}, {"M=64,N=64", 3.0}}, "M");
  KernelLibrary lib = open(kTasks);
  auto k = lib.resolve("llm/rmsnorm", {{"M", 13}, {"N", 64}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::nearest_dyn);
  EXPECT_EQ(k->info().key, key);
  EXPECT_EQ(lib.explain("llm/rmsnorm", {{"M", 13}, {"N", 64}}).rfind("nearest dynamic dim M=16 for M=13: kernel " + key.substr(0, 12), 0), 0u)
      << lib.explain("llm/rmsnorm", {{"M", 13}, {"N", 64}});
  EXPECT_EQ(lib.resolve("llm/rmsnorm", {{"M", 50}, {"N", 64}})->info().match, KernelMatch::nearest_dyn);
  EXPECT_EQ(lib.resolve("llm/rmsnorm", {{"M", 64}, {"N", 64}})->info().match, KernelMatch::exact);
  // Another static dim is another problem: nothing tuned.
  EXPECT_EQ(lib.resolve("llm/rmsnorm", {{"M", 13}, {"N", 128}})->info().match, KernelMatch::baseline);

  // It computes RMSNorm on real buffers.
  int M = 13, N = 64;
  float eps = 1e-5f;
  std::vector<float> x(M * N), w(N), y(M * N, NAN);
  for (int i = 0; i < M * N; ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (int i = 0; i < N; ++i) w[i] = 1 + 0.01f * static_cast<float>(i);
  (*k)({x.data(), w.data(), y.data(), &M, &N, &eps});
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int n = 0; n < N; ++n) ss += double(x[m * N + n]) * x[m * N + n];
    const double r = 1 / std::sqrt(ss / N + eps);
    for (int n = 0; n < N; ++n) EXPECT_NEAR(y[m * N + n], x[m * N + n] * r * w[n], 1e-5) << m << "," << n;
  }
}

// A decode asks for attention at every context length and a KV append at every position: the
// tasks name L and pos as their dynamic sizes, so each step finds the kernel tuned at one length.
TEST_F(KernelLibraryTest, EveryDecodeStepFindsTheAttentionTunedAtOneLength) {
  const std::string attn = read(kTasks + "/llm/attn_decode/seeds/cpu_omp_simd.cpp");
  const std::string key = publish("llm/attn_decode", here_, attn, "cpu_omp_simd.cpp", {{"D=64,H=4,KVH=2,L=256", 1.0}}, "L");
  const std::string append = read(kTasks + "/llm/kv_append/seeds/cpu_avx_stream.cpp");
  const std::string append_key =
      publish("llm/kv_append", here_, append, "cpu_avx_stream.cpp", {{"D=64,KVH=2,L=257,pos=256", 1.0}}, "pos");
  KernelLibrary lib = open(kTasks);
  for (std::int64_t length : {1, 7, 256}) {
    auto k = lib.resolve("llm/attn_decode", {{"H", 4}, {"KVH", 2}, {"L", length}, {"D", 64}});
    ASSERT_TRUE(k.ok()) << k.error().message;
    EXPECT_EQ(k->info().key, key) << lib.explain("llm/attn_decode", {{"H", 4}, {"KVH", 2}, {"L", length}, {"D", 64}});
    auto a = lib.resolve("llm/kv_append", {{"L", 257}, {"KVH", 2}, {"D", 64}, {"pos", length}});
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->info().key, append_key);
  }
  EXPECT_EQ(lib.resolve("llm/attn_decode", {{"H", 8}, {"KVH", 2}, {"L", 7}, {"D", 64}})->info().match,
            KernelMatch::baseline);
}

TEST_F(KernelLibraryTest, NearestDeviceUnitCount) {
  const std::string near = publish("tiny/scale", "testvendor:zen:8", scale_tuned("8 units"), "eight.cpp", {{"N=1024", 1}});
  publish("tiny/scale", "testvendor:zen:64", scale_tuned("64 units"), "sixtyfour.cpp", {{"N=1024", 1}});
  publish("tiny/scale", "testvendor:other:16", scale_tuned("other arch"), "other.cpp", {{"N=1024", 1}});
  KernelLibrary lib = open(kTestTasks, "testvendor:zen:16");
  EXPECT_EQ(lib.size(), 2u);  // the other arch's row is not loaded
  auto k = lib.resolve("tiny/scale", {{"N", 1024}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::nearest_device);
  EXPECT_EQ(k->info().key, near);
  EXPECT_TRUE(scales_right(*k, 1024));
  const std::string why = lib.explain("tiny/scale", {{"N", 1024}});
  EXPECT_EQ(why.rfind("nearest device testvendor:zen:8 (8 units) for testvendor:zen:16: kernel " + near.substr(0, 12) + " (eight.cpp)", 0), 0u) << why;
}

TEST_F(KernelLibraryTest, BaselineWhenNothingIsTunedAndTheMissIsRecorded) {
  KernelLibrary lib = open(kTestTasks);
  auto k = lib.resolve("tiny/scale", {{"N", 100}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::baseline);
  EXPECT_EQ(k->info().key, "baseline:tiny/scale");
  EXPECT_EQ(k->info().origin, "cpu_naive.cpp");
  EXPECT_TRUE(scales_right(*k, 100));
  EXPECT_EQ(lib.explain("tiny/scale", {{"N", 100}}),
            "baseline: cpu_naive.cpp of tiny/scale: no tuned kernel for tiny/scale/v1/f32/N=100 on " + here_ +
                "; the library has no tiny/scale kernel (miss recorded)");
  ASSERT_TRUE(lib.resolve("tiny/scale", {{"N", 100}}).ok());
  ASSERT_TRUE(lib.resolve("tiny/scale", {{"N", 100}}).ok());  // explain() counted none
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=100"), 0);
  ASSERT_TRUE(lib.flush_misses().ok());
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=100"), 3);
  ASSERT_TRUE(lib.flush_misses().ok());  // nothing new
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=100"), 3);
  ASSERT_TRUE(lib.resolve("tiny/scale", {{"N", 100}}).ok());
  { KernelLibrary moved = std::move(lib); }  // the destructor flushes
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=100"), 4);
}

TEST_F(KernelLibraryTest, KernelThatFailsItsChecksFallsBackToTheBaseline) {
  // A cpu kernel may not declare a GPU workspace; another does not compile.
  const std::string workspace = "// @kforge workspace: N*4\n" + scale_tuned("wants scratch");
  const std::string broken = "// @kforge entry: scale_f32\nextern \"C\" void scale_f32(const float* x, float* y, int N, float alpha) { oops }\n";
  const std::string ws_key = publish("tiny/scale", here_, workspace, "scratch.cpp", {{"N=1024", 0.5}});
  publish("tiny/scale", here_, broken, "broken.cpp", {{"N=2048", 0.5}});
  KernelLibrary lib = open(kTestTasks);

  auto k = lib.resolve("tiny/scale", {{"N", 1024}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::baseline);
  EXPECT_TRUE(scales_right(*k, 1024));
  EXPECT_EQ(lib.explain("tiny/scale", {{"N", 1024}}),
            "baseline: cpu_naive.cpp of tiny/scale: the exact kernel " + ws_key.substr(0, 12) +
                " (scratch.cpp) is not usable here: scratch.cpp: declares a GPU workspace, which a cpu kernel "
                "cannot have (miss recorded)");

  auto b = lib.resolve("tiny/scale", {{"N", 2048}});
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->info().match, KernelMatch::baseline);
  EXPECT_NE(lib.explain("tiny/scale", {{"N", 2048}}).find("broken.cpp: does not compile here: "), std::string::npos)
      << lib.explain("tiny/scale", {{"N", 2048}});

  ASSERT_TRUE(lib.flush_misses().ok());
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=1024"), 1);
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=2048"), 1);
}

TEST_F(KernelLibraryTest, DimsOutsideTheOpAreErrors) {
  KernelLibrary lib = open(kTasks);
  auto missing = lib.resolve("llm/rmsnorm", {{"M", 1}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "llm/rmsnorm at M=1: no value for 'N' (the sizes of llm/rmsnorm: M, N)");
  auto unknown_dim = lib.resolve("llm/rmsnorm", {{"M", 1}, {"N", 8}, {"K", 2}});
  ASSERT_FALSE(unknown_dim.ok());
  EXPECT_NE(unknown_dim.error().message.find("'K' is not a size of llm/rmsnorm"), std::string::npos);
  auto zero = lib.resolve("llm/rmsnorm", {{"M", 0}, {"N", 8}});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message.find("M = 0: expected an integer from 1"), std::string::npos);
  auto odd = lib.resolve("llm/rope", {{"M", 1}, {"H", 1}, {"KVH", 1}, {"D", 3}});
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("violates the constraint 'D % 2 == 0'"), std::string::npos) << odd.error().message;
  auto dtype = lib.resolve("llm/rmsnorm", {{"M", 1}, {"N", 8}}, "f16");
  ASSERT_FALSE(dtype.ok());
  EXPECT_EQ(dtype.error().message, "llm/rmsnorm: takes f32, not f16 (each dtype is its own op)");
  auto op = lib.resolve("llm/nope", {{"N", 1}});
  ASSERT_FALSE(op.ok());
  EXPECT_NE(op.error().message.find("llm/nope"), std::string::npos);
  EXPECT_EQ(lib.explain("llm/nope", {{"N", 1}}).rfind("cannot resolve: ", 0), 0u);
}

TEST_F(KernelLibraryTest, LibraryOfAnotherDeviceGivesTheBaselineAndSaysSo) {
  publish("tiny/scale", "cpu:Some Other CPU", scale_tuned(), "tuned_scale.cpp", {{"N=1024", 0.5}});
  KernelLibrary lib = open(kTestTasks);
  EXPECT_EQ(lib.size(), 0u);
  auto k = lib.resolve("tiny/scale", {{"N", 1024}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->info().match, KernelMatch::baseline);
  EXPECT_EQ(lib.explain("tiny/scale", {{"N", 1024}}),
            "baseline: cpu_naive.cpp of tiny/scale: no tuned kernel for tiny/scale/v1/f32/N=1024 on " + here_ +
                "; the library has tiny/scale kernels only for cpu:Some Other CPU (miss recorded)");
}

TEST_F(KernelLibraryTest, OpenRefusesWhatItCannotUse) {
  KernelLibraryOptions options;
  options.tasks_dir = kTestTasks;
  auto none = KernelLibrary::open((dir_ / "absent.db").string(), options);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("absent.db: no kernel library there"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "absent.db"));
  options.tasks_dir = (dir_ / "no-tasks").string();
  auto tasks = KernelLibrary::open(path_, options);
  ASSERT_FALSE(tasks.ok());
  EXPECT_NE(tasks.error().message.find("no-tasks: no tasks directory there"), std::string::npos);
}

TEST_F(KernelLibraryTest, BackendIsCpuCudaOrHipAndAGpuNeedsItsDevice) {
  KernelLibraryOptions options;
  options.tasks_dir = kTestTasks;
  options.compiler.cache_dir = KFORGE_TEST_CACHE_DIR;
  auto cpu = KernelLibrary::open_baseline(options);
  ASSERT_TRUE(cpu.ok()) << cpu.error().message;
  EXPECT_EQ(cpu->backend(), "cpu");
  EXPECT_EQ(cpu->device(), nullptr);
  auto k = cpu->resolve("tiny/scale", {{"N", 64}});
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_NE(k->function(), nullptr);
  EXPECT_TRUE(scales_right(*k, 64));
  EXPECT_TRUE(cpu->synchronize().ok());

  options.backend = "tpu";
  auto tpu = KernelLibrary::open_baseline(options);
  ASSERT_FALSE(tpu.ok());
  EXPECT_EQ(tpu.error().message, "backend 'tpu': a kernel library runs on cpu, cuda or hip");

  // test_gpu runs the GPU path on a device; here, without one, open() says why in one line.
  options.backend = "cuda";
  auto cuda = KernelLibrary::open_baseline(options);
  if (cuda.ok()) GTEST_SKIP() << "a CUDA device is here: test_gpu's LlamaDecoderMatchesTheCpu covers it";
  EXPECT_EQ(cuda.error().message.rfind("cuda: ", 0), 0u) << cuda.error().message;
  EXPECT_EQ(cuda.error().message.find('\n'), std::string::npos) << cuda.error().message;
}

TEST_F(KernelLibraryTest, ThreadsResolveAndCallConcurrently) {
  const std::string key = publish("tiny/scale", here_, scale_tuned(), "tuned_scale.cpp", {{"N=1024", 0.5}});
  KernelLibrary lib = open(kTestTasks);
  constexpr int kThreads = 8, kRounds = 200;
  std::atomic<int> wrong{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const int n = r % 2 ? 1024 : 100 + t % 2;  // tuned; baseline (two problems, shared by threads)
        auto k = lib.resolve("tiny/scale", {{"N", n}});
        if (!k) {
          ++errors;
          continue;
        }
        if ((n == 1024) != (k->info().key == key) || !scales_right(*k, n)) ++wrong;
        if (r % 50 == 0) (void)lib.explain("tiny/scale", {{"N", n}});
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(wrong, 0);
  ASSERT_TRUE(lib.flush_misses().ok());
  EXPECT_EQ(misses("tiny/scale/v1/f32/N=100") + misses("tiny/scale/v1/f32/N=101"), kThreads * kRounds / 2);
}

}  // namespace
