// The device side of the GPU backends, on a real device: memory, copies, a kernel compiled,
// loaded, launched and checked, events, launch limits, a task seed against a CPU computation, the
// decoder on the device against the cpu, an evaluation timed against a cuBLAS baseline, the copy
// kernel that measures the bandwidth, and a sticky error that kills the context but not the next
// process. Label `gpu`: without a CUDA or HIP
// device every test skips and says why. On a machine other than the build's (the GPU check
// bundle), $KFORGE_SOURCE_DIR and $KFORGE_CACHE_DIR override the build-time paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "compiler_bridge/compiler_bridge.hpp"
#include "evaluator/evaluator.hpp"
#include "evaluator/internal.hpp"
#include "inference/kernel_library.hpp"
#include "inference/llama.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

const std::string kVectorAdd = R"(
extern "C" __global__ void vadd(const float* a, const float* b, float* c, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
)";

// The launch line the evaluator would read from a candidate's header.
LaunchSpec launch_line(const std::string& text) {
  auto candidate = parse_candidate("// @kforge entry: k\n// @kforge launch: " + text + "\nvoid k() {}\n", "k.cu");
  EXPECT_TRUE(candidate.ok()) << candidate.error().message;
  return candidate->launches.at(0);
}

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_.emplace(CompileCache::open(env_or("KFORGE_CACHE_DIR", KFORGE_TEST_CACHE_DIR)).value());
    std::string reasons;
    for (const char* name : {"cuda", "hip"}) {
      auto backend = make_backend(name, *cache_).value();
      auto device = backend->open_device(0);
      if (device) {
        backend_ = std::move(backend);
        device_ = std::move(*device);
        return;
      }
      // A missing driver or device skips; a driver that is there and fails is a failure.
      if (device.error().kind != ErrorKind::io) FAIL() << device.error().message;
      reasons += (reasons.empty() ? "" : "; ") + device.error().message;
    }
    GTEST_SKIP() << reasons;
  }

  std::unique_ptr<Module> compile_and_load(const std::string& source, const Bindings& defines = {}) {
    auto binary = backend_->compile({source, "test_gpu.cu", defines, ""});
    EXPECT_TRUE(binary.ok()) << binary.error().message;
    if (!binary) return nullptr;
    auto module = device_->load(*binary);
    EXPECT_TRUE(module.ok()) << module.error().message;
    return module ? std::move(*module) : nullptr;
  }

  DevicePtr alloc(std::size_t bytes) {
    auto ptr = device_->alloc(bytes);
    EXPECT_TRUE(ptr.ok()) << ptr.error().message;
    return ptr ? *ptr : 0;
  }

  // c = a + b on the device for n floats; returns c.
  std::vector<float> vector_add(const Module& module, const std::vector<float>& a, const std::vector<float>& b) {
    int n = static_cast<int>(a.size());
    const std::size_t bytes = a.size() * sizeof(float);
    DevicePtr da = alloc(bytes), db = alloc(bytes), dc = alloc(bytes);
    EXPECT_TRUE(device_->copy_in(da, a.data(), bytes).ok());
    EXPECT_TRUE(device_->copy_in(db, b.data(), bytes).ok());
    EXPECT_TRUE(device_->fill(dc, 0xff, bytes).ok());  // NaNs, so a missed element shows
    auto dims = evaluate_launch(launch_line("grid=(ceil_div(n,BLOCK)) block=(BLOCK)"), {{"n", n}, {"BLOCK", 256}});
    EXPECT_TRUE(dims.ok()) << dims.error().message;
    void* args[] = {&da, &db, &dc, &n};
    auto launched = device_->launch(module, "vadd", *dims, args);
    EXPECT_TRUE(launched.ok()) << launched.error().message;
    std::vector<float> c(a.size());
    auto copied = device_->copy_out(c.data(), dc, bytes);
    EXPECT_TRUE(copied.ok()) << copied.error().message;
    for (DevicePtr p : {da, db, dc}) device_->free(p);
    return c;
  }

  std::optional<CompileCache> cache_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Device> device_;
};

TEST_F(GpuTest, AllocCopyRoundTrip) {
  std::vector<std::uint32_t> in(1 << 20), out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::uint32_t>(i * 2654435761u);
  const std::size_t bytes = in.size() * sizeof(in[0]);
  DevicePtr ptr = alloc(bytes);
  ASSERT_NE(ptr, 0u);
  ASSERT_TRUE(device_->copy_in(ptr, in.data(), bytes).ok());
  ASSERT_TRUE(device_->copy_out(out.data(), ptr, bytes).ok());
  EXPECT_EQ(in, out);
  ASSERT_TRUE(device_->fill(ptr, 0x5a, 64).ok());
  ASSERT_TRUE(device_->copy_out(out.data(), ptr, bytes).ok());
  EXPECT_EQ(out[0], 0x5a5a5a5au) << "fill is ordered before a later copy_out on the stream";
  EXPECT_EQ(out[16], in[16]);
  EXPECT_EQ(*device_->alloc(0), 0u) << "an empty buffer is the null pointer";
  device_->free(ptr);
  device_->free(0);
  EXPECT_FALSE(device_->dead());
}

TEST_F(GpuTest, VectorAddMatchesTheHost) {
  auto module = compile_and_load(kVectorAdd);
  ASSERT_TRUE(module);
  std::vector<float> a((1 << 20) + 3), b(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * static_cast<float>(i), b[i] = 1.0f - static_cast<float>(i);
  const std::vector<float> c = vector_add(*module, a, b);
  int wrong = 0;
  for (std::size_t i = 0; i < a.size(); ++i) wrong += c[i] != a[i] + b[i];
  EXPECT_EQ(wrong, 0) << "of " << a.size();
}

TEST_F(GpuTest, UsableFromAnotherThread) {
  // The evaluator may call from a thread other than the one that opened the device.
  DevicePtr ptr = alloc(4096);
  std::vector<std::uint8_t> out(4096);
  Status filled, copied;
  std::thread([&] {
    filled = device_->fill(ptr, 7, out.size());
    copied = device_->copy_out(out.data(), ptr, out.size());
  }).join();
  ASSERT_TRUE(filled.ok()) << filled.error().message;
  ASSERT_TRUE(copied.ok()) << copied.error().message;
  EXPECT_EQ(out[4095], 7);
  device_->free(ptr);
}

TEST_F(GpuTest, EventsTimeLaunches) {
  auto module = compile_and_load(kVectorAdd);
  ASSERT_TRUE(module);
  int n = 1 << 22;
  DevicePtr a = alloc(n * sizeof(float)), b = alloc(n * sizeof(float)), c = alloc(n * sizeof(float));
  auto start = device_->create_event(), end = device_->create_event();
  ASSERT_TRUE(start.ok() && end.ok());
  const LaunchDims dims = evaluate_launch(launch_line("grid=(ceil_div(n,256)) block=(256)"), {{"n", n}}).value();
  void* args[] = {&a, &b, &c, &n};
  ASSERT_TRUE(device_->flush_l2().ok());
  ASSERT_TRUE(device_->record(**start).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(device_->launch(*module, "vadd", dims, args).ok());
  ASSERT_TRUE(device_->record(**end).ok());
  auto ms = device_->elapsed_ms(**start, **end);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_GT(*ms, 0.0);
  EXPECT_LT(*ms, 10'000.0);
  ASSERT_TRUE(device_->flush_l2().ok()) << "the flush buffer is reused";
  ASSERT_TRUE(device_->synchronize().ok());
  for (DevicePtr p : {a, b, c}) device_->free(p);
}

TEST_F(GpuTest, LaunchBeyondTheLimitsIsAClearError) {
  auto refused = evaluate_launch(launch_line("grid=(4) block=(BLOCK)"), {{"BLOCK", 2048}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("block.x = BLOCK = 2048 exceeds the hardware limit 1024"), std::string::npos)
      << refused.error().message;

  // Dims that bypass evaluate_launch reach the driver, whose refusal says what and why.
  auto module = compile_and_load(kVectorAdd);
  ASSERT_TRUE(module);
  DevicePtr p = alloc(1024);
  int n = 0;
  void* args[] = {&p, &p, &p, &n};
  LaunchDims too_big;
  too_big.block[0] = 2048;
  auto launched = device_->launch(*module, "vadd", too_big, args);
  ASSERT_FALSE(launched.ok());
  EXPECT_NE(launched.error().message.find("block=(2048,1,1)"), std::string::npos) << launched.error().message;
  EXPECT_NE(launched.error().message.find("CUDA_ERROR_"), std::string::npos)
      << "the driver's error name: " << launched.error().message;
  auto missing = device_->launch(*module, "no_such_kernel", LaunchDims{}, args);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("'no_such_kernel'"), std::string::npos) << missing.error().message;
  EXPECT_FALSE(device_->dead()) << "a refused launch is not a sticky error";
  EXPECT_TRUE(device_->synchronize().ok());
  device_->free(p);
}

TEST_F(GpuTest, RmsnormSeedMatchesTheCpu) {
  const std::string source_dir = env_or("KFORGE_SOURCE_DIR", KFORGE_SOURCE_DIR);
  const Task task = find_task(source_dir + "/tasks", "llm/rmsnorm").value();
  const std::string path = source_dir + "/tasks/llm/rmsnorm/seeds/cuda_naive.cu";
  const Candidate candidate = parse_candidate(read_file(path).value(), path).value();
  auto module =
      compile_and_load(candidate.source + gpu_entry_declaration(task, candidate.entry), candidate.param_bindings());
  ASSERT_TRUE(module);

  int M = 64, N = 4096;
  float eps = 1e-5f;
  Bindings bindings = candidate.param_bindings();
  bindings["M"] = M, bindings["N"] = N;
  ASSERT_EQ(candidate.launches.size(), 1u);
  auto dims = evaluate_launch(candidate.launches[0], bindings);
  ASSERT_TRUE(dims.ok()) << dims.error().message;
  EXPECT_EQ(dims->grid[0], 64u);
  EXPECT_EQ(dims->block[0], static_cast<unsigned>(bindings["BLOCK"]));

  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x(M * N), w(N), y(M * N);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = 1 + 0.1f * normal(rng);
  DevicePtr dx = alloc(x.size() * 4), dw = alloc(w.size() * 4), dy = alloc(y.size() * 4);
  ASSERT_TRUE(device_->copy_in(dx, x.data(), x.size() * 4).ok());
  ASSERT_TRUE(device_->copy_in(dw, w.data(), w.size() * 4).ok());
  void* args[] = {&dx, &dw, &dy, &M, &N, &eps};
  auto launched = device_->launch(*module, candidate.entry, *dims, args);
  ASSERT_TRUE(launched.ok()) << launched.error().message;
  ASSERT_TRUE(device_->copy_out(y.data(), dy, y.size() * 4).ok());

  int wrong = 0;
  for (int m = 0; m < M; ++m) {
    double sum = 0;
    for (int n = 0; n < N; ++n) sum += double{x[m * N + n]} * x[m * N + n];
    const double scale = 1 / std::sqrt(sum / N + eps);
    for (int n = 0; n < N; ++n) {
      const double want = x[m * N + n] * scale * w[n];
      if (!(std::abs(y[m * N + n] - want) <= 1e-4 + 1e-4 * std::abs(want)) && wrong++ < 5)
        ADD_FAILURE() << "y[" << m << "," << n << "] = " << y[m * N + n] << ", want " << want;
    }
  }
  EXPECT_EQ(wrong, 0);
  for (DevicePtr p : {dx, dw, dy}) device_->free(p);
}

// The decoder on the device (weights, activations and KV cache in its memory, every op a baseline
// GPU kernel through a KernelLibrary) against the decoder on the cpu: the same logits through a
// prompt in chunks (attn_prefill, then attn_decode at later positions) and decode steps, for f32
// and Q8_0 weights, and the same greedy token from llm/lmhead_argmax.
TEST_F(GpuTest, LlamaDecoderMatchesTheCpu) {
  const std::string tasks = env_or("KFORGE_SOURCE_DIR", KFORGE_SOURCE_DIR) + std::string("/tasks");
  const fs::path dir = fs::temp_directory_path() / fmt::format("kforge-test-gpu-llama-{}", getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "m.bin").string();
  const LlamaConfig config{.dim = 64, .hidden_dim = 192, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                           .vocab_size = 256, .seq_len = 32};
  ASSERT_TRUE(write_synthetic_llama(path, config, 7).ok());
  KernelLibraryOptions cpu_options;
  cpu_options.tasks_dir = tasks;
  cpu_options.compiler.cache_dir = cache_->dir();
  KernelLibraryOptions gpu_options = cpu_options;
  gpu_options.backend = backend_->name();
  auto cpu = KernelLibrary::open_baseline(cpu_options);
  ASSERT_TRUE(cpu.ok()) << cpu.error().message;
  auto gpu = KernelLibrary::open_baseline(gpu_options);
  ASSERT_TRUE(gpu.ok()) << gpu.error().message;
  ASSERT_NE(gpu->device(), nullptr);
  EXPECT_EQ(gpu->device_key(), device_key(gpu->device()->info()));

  for (LlamaWeightFormat format : {LlamaWeightFormat::f32, LlamaWeightFormat::q8_0}) {
    SCOPED_TRACE(to_string(format));
    auto model = LlamaModel::load(path, format);
    ASSERT_TRUE(model.ok()) << model.error().message;
    const LlamaRunOptions options{.max_chunk = 4};
    auto on_cpu = LlamaDecoder::create(*model, *cpu, options);
    ASSERT_TRUE(on_cpu.ok()) << on_cpu.error().message;
    auto on_gpu = LlamaDecoder::create(*model, *gpu, options);
    ASSERT_TRUE(on_gpu.ok()) << on_gpu.error().message;
    std::vector<int> input = {1, 5, 9, 2, 7, 3};  // chunks of 4 and 2
    for (int step = 0; step < 5; ++step) {
      auto want = on_cpu->forward(input);
      ASSERT_TRUE(want.ok()) << want.error().message;
      const std::vector<float> expected(want->begin(), want->end());
      auto got = on_gpu->forward(input);
      ASSERT_TRUE(got.ok()) << got.error().message;
      ASSERT_EQ(got->size(), expected.size());
      float scale = 1, worst = 0;
      for (std::size_t i = 0; i < expected.size(); ++i) {
        scale = std::max(scale, std::abs(expected[i]));
        worst = std::max(worst, std::abs((*got)[i] - expected[i]));
      }
      EXPECT_LE(worst / scale, 1e-3f) << "step " << step;
      input = {static_cast<int>(std::max_element(expected.begin(), expected.end()) - expected.begin())};
    }
    auto cpu_token = on_cpu->forward_greedy(input);
    auto gpu_token = on_gpu->forward_greedy(input);
    ASSERT_TRUE(cpu_token.ok()) << cpu_token.error().message;
    ASSERT_TRUE(gpu_token.ok()) << gpu_token.error().message;
    EXPECT_EQ(*gpu_token, *cpu_token);
    EXPECT_EQ(on_gpu->position(), on_cpu->position());
    for (const auto& line : on_gpu->explain()) EXPECT_NE(line.find("baseline: cuda_naive.cu"), std::string::npos) << line;
  }
  ASSERT_TRUE(gpu->synchronize().ok());
  fs::remove_all(dir);
}

// llm/gemv's naive seed evaluated as `kforge eval --backend cuda` does it, in a worker: the baseline
// timed beside it is the task's cuBLAS kernel (the GPU check's machine has cuBLAS, with the toolkit).
TEST_F(GpuTest, GemvIsTimedAgainstCublas) {
  if (backend_->name() != "cuda") GTEST_SKIP() << "the cuBLAS baselines are for cuda";
  const std::string source_dir = env_or("KFORGE_SOURCE_DIR", KFORGE_SOURCE_DIR);
  auto evaluator = Evaluator::create(find_task(source_dir + "/tasks", "llm/gemv").value(), *backend_);
  ASSERT_TRUE(evaluator.ok()) << evaluator.error().message;
  const std::string path = source_dir + "/tasks/llm/gemv/seeds/cuda_naive.cu";
  EvalOptions options;
  options.max_time_per_shape_s = 0.2;
  const EvalResult r =
      evaluator->evaluate(parse_candidate(read_file(path).value(), path).value(), "cuda_naive.cu", options);
  ASSERT_EQ(r.status, EvalStatus::ok) << r.message;
  EXPECT_EQ(r.baseline, "cuda_cublas.cpp");
  EXPECT_TRUE(std::isfinite(r.speedup) && r.speedup > 0) << r.speedup;
  for (const auto& shape : r.shapes)
    if (shape.bench) {
      ASSERT_TRUE(shape.baseline_timing.has_value()) << shape_label(shape.dims);
      EXPECT_GT(shape.baseline_timing->median_us, 0) << shape_label(shape.dims);
      // Against the measured bandwidth: a naive gemv reaches some of it, and nothing beats it by far.
      EXPECT_GT(shape.roofline_pct, 0) << shape_label(shape.dims);
      EXPECT_LT(shape.roofline_pct, 150) << shape_label(shape.dims);
    }
}

// The copy kernel the worker measures a device's bandwidth with, for an honest % of roofline: a
// rate below what the attributes allow (the generous floor), yet most of it, and measured once per
// device model (the second call reads what the first kept).
TEST_F(GpuTest, TheCopyKernelMeasuresMostOfTheBandwidthTheAttributesAllow) {
  auto probe = compile_copy_probe(*backend_);
  ASSERT_TRUE(probe.ok()) << probe.error().message;
  auto measured = copy_bandwidth(*device_, *probe);
  ASSERT_TRUE(measured.ok()) << measured.error().message;
  auto limits = device_limits(device_->info());
  ASSERT_TRUE(limits.has_value()) << "the driver reports the memory clock and bus width";
  const double bound = limits->read_rate(1e12);  // a working set far beyond L2: the memory's rate
  std::printf("%s: the copy kernel moves %.0f GB/s; the attributes allow %.0f GB/s (%.0f%%)\n",
              device_->info().name.c_str(), *measured / 1e9, bound / 1e9, 100 * *measured / bound);
  EXPECT_GT(*measured, 0);
  EXPECT_LT(*measured, bound);
  EXPECT_GT(*measured, 0.3 * bound) << "a copy kernel reaches most of the bus: far less is a broken probe";
  auto again = copy_bandwidth(*device_, *probe);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *measured);
}

// Last in this file: it leaves this process's context dead.
TEST_F(GpuTest, StickyErrorKillsTheContextButNotTheNextProcess) {
  if (backend_->name() == "hip")
    GTEST_SKIP() << "ROCm aborts the whole process on a GPU memory fault; the evaluator's worker absorbs that";
  auto module = compile_and_load("extern \"C\" __global__ void poke(int* p) { *(volatile int*)p = 1; }\n");
  ASSERT_TRUE(module);
  DevicePtr illegal = 16;  // inside the null page, never mapped
  void* args[] = {&illegal};
  const Status launched = device_->launch(*module, "poke", LaunchDims{}, args);
  const Status synced = launched ? device_->synchronize() : launched;
  ASSERT_FALSE(synced.ok()) << "a write to address 16 must fail";
  EXPECT_NE(synced.error().message.find("CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos) << synced.error().message;
  EXPECT_TRUE(device_->dead());
  auto after = device_->alloc(16);
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.error().message.find("the context is dead since CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos)
      << after.error().message;

  // A fresh process (this test program again, running one test) has a working device.
  auto fresh = run_process(
      {fs::read_symlink("/proc/self/exe").string(), "--gtest_filter=GpuTest.VectorAddMatchesTheHost"}, "", 120);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_EQ(fresh->exit_code, 0) << fresh->output;
  EXPECT_NE(fresh->output.find("[  PASSED  ] 1 test"), std::string::npos) << fresh->output;
  EXPECT_EQ(fresh->output.find("SKIPPED"), std::string::npos) << fresh->output;
}

}  // namespace
