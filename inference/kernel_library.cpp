// KernelLibrary: resolve() = a hash lookup after the first time; the first time, the lookup
// chain of BestKernels, the kernel's checks, a compile through the cache and a dlopen.
#include "inference/kernel_library.hpp"

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include "task/task.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge {

const char* to_string(KernelMatch match) {
  switch (match) {
    case KernelMatch::exact:
      return "exact";
    case KernelMatch::nearest_dyn:
      return "nearest_dyn";
    case KernelMatch::nearest_device:
      return "nearest_device";
    case KernelMatch::baseline:
      return "baseline";
  }
  return "baseline";
}

namespace {

// A GPU library's device, and the first launch or device error since open (then nothing more runs).
struct Gpu {
  std::unique_ptr<Device> device;
  std::optional<Error> error;
};

// The most arguments a GPU kernel takes (the task's and a workspace): launches marshal on the stack.
constexpr std::size_t kMaxDeviceArgs = 32;

}  // namespace

struct Kernel::Launcher {
  Gpu* gpu = nullptr;
  const Task* task = nullptr;
  const DeviceKernel* kernel = nullptr;
  std::vector<LaunchDims> launches;  // at the resolved dims
  DevicePtr workspace = 0;
  std::size_t workspace_bytes = 0;
  std::string what;  // "llm/gemv at K=64,N=64 (cuda_naive.cu)", for errors

  Launcher() = default;
  Launcher(const Launcher&) = delete;
  ~Launcher() {
    if (workspace) gpu->device->free(workspace);
  }
};

void Kernel::launch(const Launcher& l, void* const* args) {
  Gpu& gpu = *l.gpu;
  if (gpu.error) return;
  std::array<DevicePtr, kMaxDeviceArgs> slots;
  std::array<void*, kMaxDeviceArgs> driver_args;
  l.kernel->marshal(*l.task, args, l.workspace, slots.data(), driver_args.data());
  Status s;
  if (l.workspace_bytes > 0) s = gpu.device->fill(l.workspace, 0, l.workspace_bytes);
  if (s) s = l.kernel->launch(*gpu.device, l.launches, driver_args.data());
  if (!s) gpu.error = Error{s.error().kind, fmt::format("{}: {}", l.what, s.error().message)};
}

namespace {

// One resolved problem: the kernel (a cpu function or a GPU launcher) and the explanation, and the
// misses counted since the last flush.
struct Problem {
  Kernel::Info info;
  Kernel::Fn fn = nullptr;
  std::unique_ptr<Kernel::Launcher> launcher;
  ProblemQuery query;
  bool miss = false;
  std::atomic<std::int64_t> pending_misses{0};
};

// A loaded shared object and its entry point.
struct Loaded {
  SharedLibrary library;
  Kernel::Fn fn;
};

// The map key of a request: op, dtype and every dim, cheap to build.
std::string request_key(const std::string& op, const Bindings& dims, const std::string& dtype) {
  std::string key;
  key.reserve(op.size() + dtype.size() + 16 * dims.size() + 2);
  key += op;
  key += '\x1f';
  key += dtype;
  key += '\x1f';
  char digits[24];
  for (const auto& [name, value] : dims) {
    key += name;
    key += '=';
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    key.append(digits, end);
    key += ',';
  }
  return key;
}

std::string short_key(const std::string& key) {
  return key.substr(0, 12);
}

// Kernels are built with -fopenmp. In a program that does not link the OpenMP runtime itself, the
// first kernel loaded brings it in, and closing the last kernel (the library's destructor) would
// unmap it under its idle worker threads, which then crash. Once a kernel has loaded it, the
// runtime stays for the life of the process (RTLD_NOLOAD | RTLD_NODELETE only marks it so).
void pin_openmp_runtime() {
  for (const char* runtime : {"libgomp.so.1", "libomp.so", "libomp.so.5"})
    if (void* handle = dlopen(runtime, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) dlclose(handle);
}

}  // namespace

struct KernelLibrary::Impl {
  std::string path, device_key, tasks_dir;
  std::unique_ptr<Backend> backend;  // compiles every kernel: cpu (run here), cuda or hip
  std::unique_ptr<Gpu> gpu;          // cuda, hip: its device, which outlives every kernel and launcher below
  std::optional<BestKernels> best;  // none for open_baseline()
  std::map<std::string, std::set<std::string>> devices_by_op;  // every device the file has `best` rows for

  // Resolved problems: read under a shared lock, added under a unique one.
  mutable std::shared_mutex problems_mutex;
  std::unordered_map<std::string, Problem*> problems;  // by request_key(); the dtype given and the task's
  std::vector<std::unique_ptr<Problem>> owned;

  // Serialises first resolves (task loading, compiling, loading); guards what follows.
  std::mutex build_mutex;
  std::map<std::string, Task> tasks;
  std::unordered_map<std::string, std::unique_ptr<Loaded>> loaded;  // by kernel key, "baseline:<op>"
  std::unordered_map<std::string, std::unique_ptr<DeviceKernel>> device_kernels;  // the same, on a GPU

  std::mutex flush_mutex;

  // The baseline's file: the task's naive seed for the backend.
  std::string baseline_name() const { return backend->conventions().baseline_seed; }

  Result<Problem*> lookup(const std::string& op, const Bindings& dims, const std::string& dtype, bool count_miss);
  Result<std::unique_ptr<Problem>> build(const Task& task, const std::string& op, const Bindings& dims);
  Result<const Task*> task(const std::string& op);
  Result<Kernel::Fn> load(const Task& task, const std::string& key, const std::string& source,
                          const std::string& origin);
  Result<const DeviceKernel*> load_device(const Task& task, const std::string& key, const std::string& source,
                                          const std::string& origin);
  // Makes `p` run the kernel `key`: its cpu function, or its GPU launches at `dims`.
  Status use(Problem& p, const Task& task, const Bindings& dims, const std::string& key, const std::string& source,
             const std::string& origin);
  std::string elsewhere(const std::string& op) const;

  static Result<std::unique_ptr<Impl>> create(const std::string& path, KernelLibraryOptions& options);
};

Result<Problem*> KernelLibrary::Impl::lookup(const std::string& op, const Bindings& dims, const std::string& dtype,
                                             bool count_miss) {
  auto found = [&](Problem* p) -> Problem* {
    if (count_miss && p->miss) p->pending_misses.fetch_add(1, std::memory_order_relaxed);
    return p;
  };
  const std::string key = request_key(op, dims, dtype);
  {
    std::shared_lock lock(problems_mutex);
    if (auto it = problems.find(key); it != problems.end()) return found(it->second);
  }
  std::lock_guard build_lock(build_mutex);  // below, only this thread changes `problems`
  if (auto it = problems.find(key); it != problems.end()) return found(it->second);
  auto t = task(op);
  if (!t) return t.error();
  const std::string want = problem_dtype(**t);
  if (!dtype.empty() && dtype != want)
    return make_error(ErrorKind::invalid_input, "{}: takes {}, not {} (each dtype is its own op)", op, want, dtype);
  // The same problem asked for with the dtype spelled out or left empty.
  const std::string canonical = request_key(op, dims, want);
  Problem* p = nullptr;
  std::unique_ptr<Problem> fresh;
  if (auto it = problems.find(canonical); it != problems.end()) {
    p = it->second;
  } else {
    auto built = build(**t, op, dims);
    if (!built) return built.error();
    fresh = std::move(*built);
    p = fresh.get();
  }
  std::unique_lock lock(problems_mutex);
  if (fresh) owned.push_back(std::move(fresh));
  problems.emplace(canonical, p);
  problems.emplace(key, p);
  return found(p);
}

Result<const Task*> KernelLibrary::Impl::task(const std::string& op) {
  if (auto it = tasks.find(op); it != tasks.end()) return &it->second;
  auto loaded_task = find_task(tasks_dir, op);
  if (!loaded_task) return loaded_task.error();
  return &tasks.emplace(op, std::move(*loaded_task)).first->second;
}

Result<Kernel::Fn> KernelLibrary::Impl::load(const Task& task, const std::string& key, const std::string& source,
                                              const std::string& origin) {
  if (auto it = loaded.find(key); it != loaded.end()) return it->second->fn;
  auto candidate = parse_candidate(source, origin);
  if (!candidate) return candidate.error();
  if (auto why = source_check(*backend, candidate->source))
    return make_error(ErrorKind::invalid_input, "{}: refused by the static check: {}", origin, *why);
  if (candidate->workspace_bytes)
    return make_error(ErrorKind::invalid_input, "{}: declares a GPU workspace, which a cpu kernel cannot have", origin);
  auto binary = compile_kernel(*backend, task, *candidate, origin);
  if (!binary)
    return make_error(binary.error().kind, "{}: does not compile here: {}", origin, first_error_line(binary.error().message));
  auto library = SharedLibrary::open(binary->path);
  if (!library) return library.error();
  pin_openmp_runtime();
  auto symbol = library->symbol("kforge_call");
  if (!symbol) return symbol.error();
  auto fn = reinterpret_cast<Kernel::Fn>(*symbol);
  loaded.emplace(key, std::make_unique<Loaded>(Loaded{std::move(*library), fn}));
  return fn;
}

Result<const DeviceKernel*> KernelLibrary::Impl::load_device(const Task& task, const std::string& key,
                                                              const std::string& source, const std::string& origin) {
  if (auto it = device_kernels.find(key); it != device_kernels.end()) return it->second.get();
  auto candidate = parse_candidate(source, origin);
  if (!candidate) return candidate.error();
  if (auto why = source_check(*backend, candidate->source))
    return make_error(ErrorKind::invalid_input, "{}: refused by the include check: {}", origin, *why);
  auto binary = compile_kernel(*backend, task, *candidate, origin, gpu->device->info().arch);
  if (!binary)
    return make_error(binary.error().kind, "{}: does not compile here: {}", origin, first_error_line(binary.error().message));
  auto kernel = load_device_kernel(*gpu->device, std::move(*candidate), *binary, origin);
  if (!kernel) return kernel.error();
  auto owned = std::make_unique<DeviceKernel>(std::move(*kernel));
  return device_kernels.emplace(key, std::move(owned)).first->second.get();
}

Status KernelLibrary::Impl::use(Problem& p, const Task& task, const Bindings& dims, const std::string& key,
                                const std::string& source, const std::string& origin) {
  if (!gpu) {
    auto fn = load(task, key, source, origin);
    if (!fn) return fn.error();
    p.fn = *fn;
    return {};
  }
  if (task.args.size() + 1 > kMaxDeviceArgs)
    return make_error(ErrorKind::invalid_input, "{}: {} arguments, more than a GPU launch here takes ({})", task.id(),
                      task.args.size(), kMaxDeviceArgs - 1);
  auto kernel = load_device(task, key, source, origin);
  if (!kernel) return kernel.error();
  auto launcher = std::make_unique<Kernel::Launcher>();
  launcher->gpu = gpu.get();
  launcher->task = &task;
  launcher->kernel = *kernel;
  launcher->what = fmt::format("{} at {} ({})", task.id(), shape_label(dims), origin);
  auto launches = (*kernel)->launch_dims(dims);
  if (!launches) return make_error(launches.error().kind, "{}: its launch line: {}", origin, launches.error().message);
  launcher->launches = std::move(*launches);
  auto bytes = (*kernel)->workspace_bytes(dims);
  if (!bytes) return make_error(bytes.error().kind, "{}: its workspace: {}", origin, bytes.error().message);
  if (*bytes > 0) {
    auto workspace = gpu->device->alloc(*bytes);
    if (!workspace) return workspace.error();
    launcher->workspace = *workspace;
    launcher->workspace_bytes = *bytes;
  }
  p.launcher = std::move(launcher);
  return {};
}

// " (the library has <op> kernels only for cpu:X, cpu:Y)", or " (the library has none for <op>)".
std::string KernelLibrary::Impl::elsewhere(const std::string& op) const {
  if (!best) return "no kernel library open";
  auto it = devices_by_op.find(op);
  if (it == devices_by_op.end() || it->second.empty()) return fmt::format("the library has no {} kernel", op);
  std::vector<std::string> others;
  for (const auto& d : it->second)
    if (d != device_key) others.push_back(d);
  if (others.empty()) return fmt::format("the library has {} kernels for this device at other dims", op);
  return fmt::format("the library has {} kernels only for {}", op, fmt::join(others, ", "));
}

Result<std::unique_ptr<Problem>> KernelLibrary::Impl::build(const Task& task, const std::string& op,
                                                            const Bindings& dims) {
  const std::string want = problem_dtype(task);
  if (auto why = shape_problem(task, dims))
    return make_error(ErrorKind::invalid_input, "{} at {}: {}", op, shape_label(dims), *why);

  auto p = std::make_unique<Problem>();
  p->query = problem_query(op, want, shape_label(dims), problem_dynamic_dim(task));
  p->info.op = op;
  const std::string problem = problem_key(p->query);

  // The lookup chain; a tuned kernel that is unusable here falls through to the baseline.
  std::string unusable;
  const BestKernels::Resolution r = best ? best->resolve(p->query) : BestKernels::Resolution{};
  if (r.entry) {
    const BestRecord& b = r.entry->best;
    const KernelRecord* k = best->kernel(b.kernel_key);
    Status usable = make_error(ErrorKind::internal, "its source is not in the library");
    if (k && k->task != op)
      usable = make_error(ErrorKind::invalid_input, "it implements {}, not {}", k->task, op);
    else if (k && k->backend != backend->name())
      usable = make_error(ErrorKind::invalid_input, "it is a {} kernel; this library runs {} kernels", k->backend,
                          backend->name());
    else if (k)
      usable = use(*p, task, dims, k->key, k->source, k->origin);
    const std::string origin = k ? k->origin : "?";
    if (usable) {
      p->info.key = b.kernel_key;
      p->info.origin = origin;
      const std::string what =
          fmt::format("kernel {} ({}), {}, {:.2f} us at {}, published {}", short_key(b.kernel_key), origin,
                      b.speedup > 0 ? fmt::format("{:.2f}x its baseline", b.speedup) : std::string("no baseline timed"),
                      b.median_us, b.dyn && !p->query.dynamic_dim.empty()
                                       ? fmt::format("{}{}{}={}", b.static_key, b.static_key.empty() ? "" : ",",
                                                     p->query.dynamic_dim, *b.dyn)
                                       : b.static_key,
                      b.published_at.substr(0, 10));
      switch (r.match) {
        case BestKernels::Match::exact:
          p->info.match = KernelMatch::exact;
          p->info.explanation = fmt::format("exact: {}", what);
          break;
        case BestKernels::Match::nearest_dyn:
          p->info.match = KernelMatch::nearest_dyn;
          p->info.explanation = fmt::format("nearest dynamic dim {}={} for {}={}: {}", p->query.dynamic_dim, *b.dyn,
                                            p->query.dynamic_dim, *p->query.dyn, what);
          break;
        default:
          p->info.match = KernelMatch::nearest_device;
          p->info.explanation =
              fmt::format("nearest device {} ({} units) for {}: {}", b.device_key, r.entry->units, device_key, what);
          break;
      }
      return p;
    }
    unusable = fmt::format("the {} kernel {} ({}) is not usable here: {}",
                           r.match == BestKernels::Match::exact         ? "exact"
                           : r.match == BestKernels::Match::nearest_dyn ? "nearest-dim"
                                                                        : "nearest-device",
                           short_key(b.kernel_key), origin, usable.error().message);
  }

  // The baseline: the task's naive seed.
  const std::string name = baseline_name();
  const std::string seed = (std::filesystem::path(task.dir) / "seeds" / name).string();
  auto source = read_file(seed);
  if (!source)
    return make_error(ErrorKind::invalid_input, "{}: no tuned kernel usable for {} on {}, and no baseline: {}", op,
                      problem, device_key, source.error().message);
  if (Status s = use(*p, task, dims, "baseline:" + op, *source, name); !s)
    return make_error(s.error().kind, "{}: the baseline {}", op, s.error().message);
  p->miss = best.has_value();  // no library, no miss to record
  p->info.key = "baseline:" + op;
  p->info.origin = name;
  p->info.match = KernelMatch::baseline;
  p->info.explanation =
      fmt::format("baseline: {} of {}: {}{}", name, op,
                  unusable.empty() ? fmt::format("no tuned kernel for {} on {}; {}", problem, device_key, elsewhere(op))
                                   : unusable,
                  best ? " (miss recorded)" : "");
  return p;
}

namespace {

// Fills in the defaults of `options`; refuses a tasks_dir that is not there and an unknown backend.
Status complete_options(KernelLibraryOptions& options) {
  if (options.tasks_dir.empty())
    if (const char* env = std::getenv("KFORGE_TASKS_DIR"); env && *env) options.tasks_dir = env;
  if (options.tasks_dir.empty())
    return make_error(ErrorKind::invalid_input,
                      "no tasks directory: set KernelLibraryOptions::tasks_dir or $KFORGE_TASKS_DIR");
  std::error_code ec;
  if (!std::filesystem::is_directory(options.tasks_dir, ec))
    return make_error(ErrorKind::invalid_input, "{}: no tasks directory there", options.tasks_dir);
  auto conventions = kernel_conventions(options.backend);
  if (!conventions || options.backend == "null")
    return make_error(ErrorKind::invalid_input, "backend '{}': a kernel library runs on cpu, cuda or hip",
                      options.backend);
  return {};
}

}  // namespace

// The library without its `best` rows: what runs kernels (the host compiler, or a GPU backend and
// its device), the device key filled in.
Result<std::unique_ptr<KernelLibrary::Impl>> KernelLibrary::Impl::create(const std::string& path,
                                                                         KernelLibraryOptions& options) {
  if (Status s = complete_options(options); !s) return s.error();
  auto impl = std::make_unique<KernelLibrary::Impl>();
  impl->path = path;
  impl->tasks_dir = options.tasks_dir;
  if (kernel_conventions(options.backend)->runs_on_host()) {  // with the embedder's host compiler options
    impl->backend = make_host_backend(options.compiler);
  } else {
    auto cache = CompileCache::open(options.compiler.cache_dir);
    if (!cache) return cache.error();
    auto backend = make_backend(options.backend, *cache);
    if (!backend) return backend.error();
    impl->backend = std::move(*backend);
  }
  if (Status s = impl->backend->compiler_status(); !s)
    return make_error(s.error().kind, "{}: cannot compile kernels: {}", options.backend, s.error().message);
  if (impl->backend->conventions().runs_on_host()) {
    if (options.device_key.empty()) options.device_key = "cpu:" + host_cpu_name();
  } else {
    auto device = impl->backend->open_device(options.device_index);
    if (!device) return device.error();
    if (options.device_key.empty()) options.device_key = kforge::device_key((*device)->info());
    impl->gpu = std::make_unique<Gpu>(Gpu{std::move(*device), std::nullopt});
  }
  impl->device_key = options.device_key;
  return impl;
}

Result<KernelLibrary> KernelLibrary::open_baseline(KernelLibraryOptions options) {
  auto impl = Impl::create("", options);
  if (!impl) return impl.error();
  return KernelLibrary(std::move(*impl));
}

Result<KernelLibrary> KernelLibrary::open(const std::string& path, KernelLibraryOptions options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return make_error(ErrorKind::io, "{}: no kernel library there (kforge eval or kforge search writes one)", path);
  auto impl = Impl::create(path, options);
  if (!impl) return impl.error();
  {
    auto store = KernelStore::open(path, /*read_only=*/true);
    if (!store) return store.error();
    auto rows = store->best();
    if (!rows) return rows.error();
    for (const auto& b : *rows) (*impl)->devices_by_op[b.op].insert(b.device_key);
  }
  auto best = BestKernels::load(path, options.device_key);
  if (!best) return best.error();
  (*impl)->best.emplace(std::move(*best));
  return KernelLibrary(std::move(*impl));
}

Result<Kernel> KernelLibrary::resolve(const std::string& op, const Bindings& dims, const std::string& dtype) {
  auto p = impl_->lookup(op, dims, dtype, /*count_miss=*/true);
  if (!p) return p.error();
  return Kernel((*p)->fn, (*p)->launcher.get(), &(*p)->info);
}

std::string KernelLibrary::explain(const std::string& op, const Bindings& dims, const std::string& dtype) {
  auto p = impl_->lookup(op, dims, dtype, /*count_miss=*/false);
  if (!p) return "cannot resolve: " + p.error().message;
  return (*p)->info.explanation;
}

Status KernelLibrary::flush_misses() {
  std::lock_guard flush_lock(impl_->flush_mutex);
  std::vector<std::pair<Problem*, std::int64_t>> counts;
  {
    std::shared_lock lock(impl_->problems_mutex);
    for (auto& p : impl_->owned)
      if (p->miss)
        if (std::int64_t n = p->pending_misses.exchange(0, std::memory_order_relaxed); n > 0) counts.emplace_back(p.get(), n);
  }
  if (counts.empty() || !impl_->best) return {};
  auto restore = [&] {  // not written: counted again at the next flush
    for (auto& [p, n] : counts) p->pending_misses.fetch_add(n, std::memory_order_relaxed);
  };
  auto store = KernelStore::open(impl_->path);
  if (!store) return restore(), Status(store.error());
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (auto s = store->record_miss(counts[i].first->query, impl_->device_key, counts[i].second); !s) {
      counts.erase(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(i));
      restore();
      return s;
    }
  return {};
}

const std::string& KernelLibrary::path() const {
  return impl_->path;
}
const std::string& KernelLibrary::device_key() const {
  return impl_->device_key;
}
std::string KernelLibrary::backend() const {
  return impl_->backend->name();
}
Device* KernelLibrary::device() const {
  return impl_->gpu ? impl_->gpu->device.get() : nullptr;
}

Status KernelLibrary::synchronize() {
  Gpu* gpu = impl_->gpu.get();
  if (!gpu) return {};
  if (!gpu->error)
    if (Status s = gpu->device->synchronize(); !s) gpu->error = s.error();
  if (gpu->error) return *gpu->error;
  return {};
}
std::size_t KernelLibrary::size() const {
  return impl_->best ? impl_->best->size() : 0;
}

KernelLibrary::KernelLibrary(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KernelLibrary::KernelLibrary(KernelLibrary&&) noexcept = default;
KernelLibrary& KernelLibrary::operator=(KernelLibrary&& other) noexcept {
  if (this != &other) {
    if (impl_) (void)flush_misses();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
KernelLibrary::~KernelLibrary() {
  if (impl_) (void)flush_misses();
}

}  // namespace kforge
