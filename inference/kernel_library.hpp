// inference: KernelLibrary, what a program links to run the kernels kforge tuned.
//
//   auto lib = kforge::KernelLibrary::open("kforge.db", {.tasks_dir = "/path/to/tasks"});
//   if (!lib) return fail(lib.error().message);                 // one line: which file, what is wrong
//   auto scale = lib->resolve("tiny/scale", {{"N", n}});          // compiled on first use
//   if (!scale) return fail(scale.error().message);
//   int N = n; float alpha = 2;
//   (*scale)({x, y, &N, &alpha});                                 // kforge_call: one pointer per task argument
//   puts(lib->explain("tiny/scale", {{"N", n}}).c_str());        // which kernel, and why
//
// On a GPU (options.backend "cuda" or "hip"), the library opens the device, and tensors are
// device memory that the caller manages through device():
//
//   auto lib = kforge::KernelLibrary::open("kforge.db", {.tasks_dir = "tasks", .backend = "cuda"});
//   kforge::Device& gpu = *lib->device();                 // alloc, copy_in, copy_out, free
//   kforge::DevicePtr x = *gpu.alloc(4 * n), w = *gpu.alloc(4 * n), y = *gpu.alloc(4 * n);
//   auto norm = lib->resolve("llm/rmsnorm", {{"M", 1}, {"N", n}});   // seeds/cuda_naive.cu at worst
//   int M = 1, N = n; float eps = 1e-5f;
//   auto at = [](kforge::DevicePtr p) { return reinterpret_cast<void*>(p); };
//   (*norm)({at(x), at(w), at(y), &M, &N, &eps});         // enqueued on the library's stream
//   if (auto s = lib->synchronize(); !s) return fail(s.error().message);   // ran, or why not
//
// open() loads the library's published `best` table for one device into memory, through a
// read-only connection, once. resolve(op, dims, dtype) picks a kernel by the lookup chain of
// kernels_db (BestKernels):
//   1. exact: a kernel tuned for this problem (op, dtype, every dim) on this device;
//   2. nearest dynamic dim: the same static dims, the nearest tuned value of the dynamic dim
//      ("M", the token count, where the op has one);
//   3. nearest device: the same vendor and arch, the nearest SM/CU count;
//   4. baseline: the task's naive seed, built in with every task: seeds/cpu_naive.cpp on the cpu,
//      seeds/cuda_naive.cu on a GPU (HIP compiles it through its CUDA prelude, as the evaluator does).
// Before a tuned kernel is used it is checked: it must implement the op, be a kernel of the
// library's backend, parse (its `// @kforge` header), pass the static check (cpu; on a GPU the
// include check), declare no workspace on the cpu, and compile here; a kernel that fails any of
// these falls back to the baseline, and explain() says why. The dims themselves must be a shape of
// the op (every size given, each from 1 to INT32_MAX, the task's constraints hold, quantized
// tensors in whole blocks): otherwise resolve() is an error, since no kernel of the op, not even
// the baseline, is defined there.
//
// A cpu kernel is compiled with the host compiler exactly as the evaluator compiles a candidate
// (its params as -D defines, the task's trampoline appended; -O3 -march=native -fopenmp) through
// the on-disk compile cache, then loaded with dlopen, once per library and kernel. A GPU kernel is
// compiled by the backend (NVRTC, hiprtc) for the device's arch through the same cache, loaded on
// the device once per library and kernel, and launched as the evaluator launches a candidate: its
// `// @kforge launch:` lines evaluated at the resolved dims (and its params) once, at resolve;
// a workspace it declares allocated then and zeroed before each call. Every resolved problem is
// remembered: after the first resolve, resolve() is one hash lookup under a shared lock
// (build/bench/bench_kernel_library measures it), and a Kernel kept by the caller costs an
// indirect call (on a GPU, plus the driver's launch). resolve(), explain() and flush_misses() are
// thread-safe; cpu kernels run in the calling thread. A GPU library's kernels enqueue on one
// stream of its device: launch them, and use device(), from one thread at a time.
//
// Misses: a problem resolved to the baseline (no tuned kernel, or none usable) is counted on
// every resolve, and flush_misses() adds the counts to the library's `miss` table (a short
// read-write open), so the next `kforge search` knows what to tune; the destructor flushes too,
// ignoring errors.
//
// The tuned kernels run unsandboxed, in this process or on its device, like any code a program
// links: open only libraries whose kernels kforge evaluated (or that you trust).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "common/common.hpp"
#include "common/expr.hpp"
#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {

struct KernelLibraryOptions {
  // Where the ops' task folders live (suite/name/task.toml, seeds/cpu_naive.cpp): a task gives a
  // kernel its calling convention and the baseline. Empty: $KFORGE_TASKS_DIR.
  std::string tasks_dir;
  // Where kernels run: "cpu" (in this process), "cuda" or "hip" (on device `device_index` of that
  // backend, which open() opens; a machine without one gets an error saying why).
  std::string backend = "cpu";
  int device_index = 0;
  // The device lookups match: "cpu:<model name>" or "<vendor>:<arch>:<units>". Empty: the device
  // the kernels run on, "cpu:" + host_cpu_name() or device_key(device info), e.g. "nvidia:sm_90:132".
  std::string device_key;
  // The host compiler (cpu) and the compile cache of every backend (empty cache_dir:
  // $KFORGE_CACHE_DIR, else ~/.cache/kforge).
  HostCompilerOptions compiler;
};

// How a kernel was chosen.
enum class KernelMatch { exact, nearest_dyn, nearest_device, baseline };
const char* to_string(KernelMatch match);  // "exact", "nearest_dyn", "nearest_device", "baseline"

// A launchable kernel: a small value, valid while the KernelLibrary that returned it lives.
// Calling it runs the kernel to completion in the calling thread.
class Kernel {
 public:
  struct Info {
    std::string op;
    std::string key;     // the library's kernel key; "baseline:<op>" for the built-in baseline
    std::string origin;  // its file name ("cpu_naive.cpp", "cuda_naive.cu", "llm_diff 3f2a...")
    KernelMatch match = KernelMatch::baseline;
    std::string explanation;  // what explain() says
  };

  // args[i] points at the i-th argument of the task: tensor data, or the address of an int size
  // or of a float/int scalar (tasks/README.md, "The CPU contract"); the sizes are those the kernel
  // was resolved at. A cpu kernel runs to completion in the calling thread. A GPU kernel takes
  // tensor data as device addresses (a DevicePtr cast to void*), sizes and scalars as host
  // addresses as on the cpu; the call enqueues its launches on the library's stream and returns,
  // and KernelLibrary::synchronize() waits for them and reports a launch that failed.
  void operator()(void* const* args) const { fn_ ? fn_(args) : launch(*launcher_, args); }
  void operator()(std::initializer_list<void*> args) const { (*this)(args.begin()); }
  void call(std::initializer_list<void*> args) const { (*this)(args.begin()); }

  const Info& info() const { return *info_; }
  // The kernel's `kforge_call`, for a caller that dispatches by itself; null for a GPU kernel.
  using Fn = void (*)(void* const*);
  Fn function() const { return fn_; }

  struct Launcher;  // a GPU kernel's launches at its dims, kept by the library

 private:
  friend class KernelLibrary;
  Kernel(Fn fn, const Launcher* launcher, const Info* info) : fn_(fn), launcher_(launcher), info_(info) {}
  static void launch(const Launcher& launcher, void* const* args);
  Fn fn_;
  const Launcher* launcher_;
  const Info* info_;
};

class KernelLibrary {
 public:
  // Loads the published kernels of the library at `path` for the device. Refuses a missing,
  // corrupt or newer-schema file, a tasks_dir that is not a directory, a compiler that is not
  // there, and a GPU backend without a device to open, with one line saying which.
  static Result<KernelLibrary> open(const std::string& path, KernelLibraryOptions options = {});
  // No library file: every op resolves to its baseline (what a program runs before any tuning,
  // and what `kforge infer --compare` measures the tuned kernels against). Records no misses;
  // path() is empty.
  static Result<KernelLibrary> open_baseline(KernelLibraryOptions options = {});

  // The kernel for `op` ("llm/rmsnorm") at `dims` ({{"M", 1}, {"N", 4096}}: every size of the
  // task), by the chain above. `dtype` empty: the task's (the dtype of its first tensor); another
  // one is an error (one dtype per task: llm/gemv_q8_0 is its own op). Compiles on first use.
  // An error for an unknown op, dims that are not a shape of it, or a baseline that does not build.
  Result<Kernel> resolve(const std::string& op, const Bindings& dims, const std::string& dtype = "");

  // One line: which kernel resolve() returns for the problem, and why ("exact: kernel 3f2a9c81d0e4
  // (cpu_omp_simd.cpp), 3.40x its baseline, published 2025-...", "nearest dynamic dim M=16 for
  // M=13: ...", "baseline: no tuned kernel for ... (miss recorded)"), or why it cannot.
  // Resolves (and compiles) like resolve(), without counting a miss.
  std::string explain(const std::string& op, const Bindings& dims, const std::string& dtype = "");

  // Adds the misses counted since the last flush to the library's miss table.
  Status flush_misses();

  // A GPU library's device, for the caller's buffers (alloc, copy_in, copy_out, free); null on
  // the cpu. Not thread-safe, like the kernels' launches.
  Device* device() const;
  // Waits until every kernel launched so far has run. An error: the first launch or device error
  // since open(), naming the kernel; after it the library launches nothing more (the results, and
  // a GPU context after a sticky error, cannot be trusted). On the cpu there is nothing to wait for.
  Status synchronize();

  const std::string& path() const;
  const std::string& device_key() const;
  std::string backend() const;  // "cpu", "cuda", "hip"
  // Published rows loaded for this device (its own and same-arch fallbacks).
  std::size_t size() const;

  KernelLibrary(KernelLibrary&&) noexcept;
  KernelLibrary& operator=(KernelLibrary&&) noexcept;
  KernelLibrary(const KernelLibrary&) = delete;
  KernelLibrary& operator=(const KernelLibrary&) = delete;
  ~KernelLibrary();  // flushes misses, best effort

 private:
  struct Impl;
  explicit KernelLibrary(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kforge
