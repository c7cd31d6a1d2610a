// The physics floor: what this machine can move and compute at best, measured once per worker by
// a probe compiled like every candidate (same compiler, same -O3 -march=native -fopenmp), so no
// honest kernel can beat it by being built better. A measured time far below
// max(bytes / bandwidth, FLOPs / peak) is not a fast kernel but a broken measurement or a cheat.
// A GPU's floor comes from its attributes, generously; its % of roofline from the bandwidth a
// copy kernel, compiled and launched like every candidate, measured on it.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

// Read bandwidth over hot buffers of several sizes (each level of the cache hierarchy, then
// memory), and FMA throughput, on every core. The best of several repetitions of each.
constexpr const char* kProbeSource = R"(
#include <chrono>
#include <cstdlib>
#include <algorithm>
#include <omp.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace {
double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// n floats, 64-byte aligned, written (so their pages are in) by every core. free() them.
float* filled(long n) {
  float* data = static_cast<float*>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64));
  #pragma omp parallel for
  for (long i = 0; i < n; ++i) data[i] = 1.0f + (i & 7);
  return data;
}

// The sum of data[0, n) on `threads` threads, each reading its share as kStreams interleaved
// streams: the hardware prefetchers keep more lines in flight for several streams than for one
// (on the AMD EPYC VM 25-30% more from memory with 8 than with 1), and a gemv reads several rows
// at once, so one stream per core would put the roofline below what kernels reach.
float read_sum(const float* data, long n, int threads) {
  constexpr int kStreams = 8;
  float total = 0;
  #pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long begin = n * t / nt, end = n * (t + 1) / nt;
    const long length = (end - begin) / kStreams / 16 * 16;  // whole 64-byte lines per stream
    float acc[kStreams][16] = {};
    for (long i = 0; i < length; i += 16)
      for (int s = 0; s < kStreams; ++s)
        #pragma omp simd
        for (int k = 0; k < 16; ++k) acc[s][k] += data[begin + s * length + i + k];
    for (long i = begin + kStreams * length; i < end; ++i) acc[0][0] += data[i];  // the tail
    for (int s = 0; s < kStreams; ++s)
      for (int k = 0; k < 16; ++k) total += acc[s][k];
  }
  return total;
}
}  // namespace

// Bytes per second reading `bytes` of hot memory with `threads` threads.
extern "C" double kforge_probe_read(long bytes, int threads) {
  const long n = bytes / 4;
  float* data = filled(n);
  double best = 0, start = seconds();
  volatile float sink = 0;
  for (int rep = 0; rep < 1000 && (rep < 5 || seconds() - start < 0.05); ++rep) {
    const long passes = 1 + (1l << 22) / n;  // at least 16 MiB read per repetition
    const double t0 = seconds();
    float total = 0;
    for (long p = 0; p < passes; ++p) total += read_sum(data, n, threads);
    const double t = seconds() - t0;
    sink = total;
    if (t > 0) best = std::max(best, double(passes) * n * 4 / t);
  }
  std::free(data);
  return best;
}

// Bytes per second of one timed read, `passes` passes over `bytes` with `threads` threads, after
// an untimed pass that faults the pages in: no best-of, so that it can be set beside a run of
// about its length that reads as many bytes, timed right next to it (bench_infer's decode runs).
extern "C" double kforge_probe_read_passes(long bytes, int threads, long passes) {
  const long n = bytes / 4;
  float* data = filled(n);
  volatile float sink = 0;
  double t0 = 0;
  for (long p = -1; p < passes; ++p) {
    if (p == 0) t0 = seconds();
    sink = sink + read_sum(data, n, threads);
  }
  const double t = seconds() - t0;
  std::free(data);
  return t > 0 ? double(passes) * n * 4 / t : 0;
}

// Bytes per second moved copying `bytes` to another buffer with `threads` threads (each byte read
// once and written once, both counted: STREAM's copy). The stores are non-temporal where the ISA
// has them, as a streaming kernel's are, so no line is read for ownership. The best of several.
extern "C" double kforge_probe_copy(long bytes, int threads) {
  const long n = bytes / 4 / 16 * 16;
  float* in = static_cast<float*>(std::aligned_alloc(64, n * 4));
  float* out = static_cast<float*>(std::aligned_alloc(64, n * 4));
  #pragma omp parallel for
  for (long i = 0; i < n; ++i) in[i] = out[i] = 1.0f + (i & 7);
  double best = 0, start = seconds();
  for (int rep = 0; rep < 1000 && (rep < 3 || seconds() - start < 0.05); ++rep) {
    const double t0 = seconds();
    #pragma omp parallel num_threads(threads)
    {
      #pragma omp for schedule(static)
      for (long i = 0; i < n; i += 16) {
#if defined(__AVX512F__)
        _mm512_stream_ps(out + i, _mm512_load_ps(in + i));
#elif defined(__AVX__)
        _mm256_stream_ps(out + i, _mm256_load_ps(in + i));
        _mm256_stream_ps(out + i + 8, _mm256_load_ps(in + i + 8));
#else
        for (int k = 0; k < 16; ++k) out[i + k] = in[i + k];
#endif
      }
#if defined(__AVX__)
      _mm_sfence();  // this thread's streamed stores have landed before the clock stops
#endif
    }
    const double t = seconds() - t0;
    if (t > 0) best = std::max(best, 2.0 * n * 4 / t);
  }
  volatile float sink = out[n / 2];
  (void)sink;
  std::free(in);
  std::free(out);
  return best;
}

// Floating-point operations per second of independent FMA chains on `threads` threads.
extern "C" double kforge_probe_fma(int threads) {
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    const long iterations = 1 << 20;
    const double t0 = seconds();
    float total = 0;
    #pragma omp parallel reduction(+ : total) num_threads(threads)
    {
      float acc[256];
      for (int i = 0; i < 256; ++i) acc[i] = 1.0f + i * 1e-6f;
      const float a = 0.999999f, b = 1e-7f;
      for (long k = 0; k < iterations / 16; ++k)
        #pragma omp simd
        for (int i = 0; i < 256; ++i) acc[i] = acc[i] * a + b;
      for (int i = 0; i < 256; ++i) total += acc[i];
    }
    const double t = seconds() - t0;
    volatile float sink = total;
    (void)sink;
    if (t > 0) best = std::max(best, 2.0 * 256 * (iterations / 16) * threads / t);
  }
  return best;
}
)";

// The read probe's buffer sizes: each level of the cache hierarchy, then memory. The last step is
// at least four times the last-level cache the system reports (a VM may report its whole socket's
// L3, 300 MiB or more), capped at an eighth of the memory, so that it reads from DRAM wherever it
// runs: the cpu roofline (host_roofline) is that step's rate.
std::vector<long> read_ladder() {
  std::vector<long> steps = {16l << 10, 256l << 10, 2l << 20, 16l << 20, 128l << 20};
  const long llc = std::max(sysconf(_SC_LEVEL3_CACHE_SIZE), sysconf(_SC_LEVEL2_CACHE_SIZE));
  const long memory = sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
  if (const long dram = std::min(4 * llc, memory / 8); dram > steps.back()) steps.push_back(dram);
  return steps;
}

// A device-to-device copy, one float4 a thread: what the device's memory sustains for a plain
// stream of reads and writes (STREAM's copy). CUDA, and HIP through its backend's prelude.
constexpr const char* kCopySource = R"(
extern "C" __global__ void kforge_copy(const float4* __restrict__ in, float4* __restrict__ out, unsigned long long n) {
  const unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}
)";

using nlohmann::json;

json limits_to_json(const MachineLimits& m) {
  json ladder = json::array();
  for (const auto& [bytes, rate] : m.read_bytes_per_s) ladder.push_back({bytes, rate});
  return {{"read_bytes_per_s", ladder},
          {"flops_per_s", m.flops_per_s},
          {"memory_read_bytes_per_s", m.memory_read_bytes_per_s},
          {"memory_copy_bytes_per_s", m.memory_copy_bytes_per_s}};
}

Result<MachineLimits> limits_from_json(const json& j) {
  try {
    MachineLimits m;
    for (const auto& step : j.at("read_bytes_per_s")) m.read_bytes_per_s.emplace_back(step.at(0), step.at(1));
    m.flops_per_s = j.at("flops_per_s");
    m.memory_read_bytes_per_s = j.value("memory_read_bytes_per_s", 0.0);  // (0 in files from before 2026-12-07)
    m.memory_copy_bytes_per_s = j.value("memory_copy_bytes_per_s", 0.0);
    if (m.read_bytes_per_s.empty() || !(m.flops_per_s > 0)) return make_error(ErrorKind::internal, "empty probe");
    return m;
  } catch (const json::exception& e) {
    return make_error(ErrorKind::internal, "malformed probe result: {}", e.what());
  }
}

// The file beside the probe: the best of every run at the top level (as files from before the
// latest was kept hold it), the latest run under "latest".
json probed_to_json(const ProbedLimits& p) {
  json j = limits_to_json(p.best);
  j["latest"] = limits_to_json(p.latest);
  return j;
}

// A saved file; nothing if it is unreadable.
struct SavedLimits {
  MachineLimits best;
  std::optional<MachineLimits> latest;  // missing in files from before it was kept
};
std::optional<SavedLimits> load_probed(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  const json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  auto best = limits_from_json(j);
  if (!best) return std::nullopt;
  SavedLimits saved{*best, std::nullopt};
  if (j.contains("latest"))
    if (auto latest = limits_from_json(j["latest"])) saved.latest = *latest;
  return saved;
}

// Each rate the higher of `a`'s and `b`'s; `a` alone when their ladders differ (another machine's).
MachineLimits best_of(MachineLimits a, const MachineLimits& b) {
  if (a.read_bytes_per_s.size() != b.read_bytes_per_s.size()) return a;
  for (size_t i = 0; i < a.read_bytes_per_s.size(); ++i)
    a.read_bytes_per_s[i].second = std::max(a.read_bytes_per_s[i].second, b.read_bytes_per_s[i].second);
  a.flops_per_s = std::max(a.flops_per_s, b.flops_per_s);
  a.memory_read_bytes_per_s = std::max(a.memory_read_bytes_per_s, b.memory_read_bytes_per_s);
  a.memory_copy_bytes_per_s = std::max(a.memory_copy_bytes_per_s, b.memory_copy_bytes_per_s);
  return a;
}

// Runs the probe in a child: it starts OpenMP threads, and a worker that forks evaluations must
// not hold any (libgomp does not survive fork).
Result<MachineLimits> measure(const std::string& probe_binary) {
  auto child = run_in_child(
      [&](int fd) {
        auto library = SharedLibrary::open(probe_binary);
        if (!library) _exit(2);
        auto read = library->symbol("kforge_probe_read");
        auto copy = library->symbol("kforge_probe_copy");
        auto fma = library->symbol("kforge_probe_fma");
        if (!read || !copy || !fma) _exit(2);
        // Every core at once, and one core times the number of cores: on a busy machine the first
        // is the worse estimate, and the floor must not rise with someone else's load.
        const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        auto read_rate = reinterpret_cast<double (*)(long, int)>(*read);
        auto fma_rate = reinterpret_cast<double (*)(int)>(*fma);
        auto copy_rate = reinterpret_cast<double (*)(long, int)>(*copy);
        MachineLimits m;
        for (long bytes : read_ladder()) {
          const double all = read_rate(bytes, cores);
          m.read_bytes_per_s.emplace_back(bytes, std::max(all, cores * read_rate(bytes, 1)));
          m.memory_read_bytes_per_s = all;  // (the last step's: memory)
        }
        m.memory_copy_bytes_per_s = copy_rate(read_ladder().back(), cores);
        m.flops_per_s = std::max(fma_rate(cores), cores * fma_rate(1));
        const std::string text = limits_to_json(m).dump();
        if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(3);
        _exit(0);
      },
      60);
  if (!child) return child.error();
  if (child->timed_out || child->exit_code != 0)
    return make_error(ErrorKind::internal, "the machine probe failed (exit {}, signal {})", child->exit_code,
                      child->signal);
  auto parsed = json::parse(child->output, nullptr, false);
  return parsed.is_discarded() ? Result<MachineLimits>(make_error(ErrorKind::internal, "unreadable probe"))
                               : limits_from_json(parsed);
}

}  // namespace

long memory_probe_bytes() { return read_ladder().back(); }

Result<Binary> compile_probe(const Backend& host) {
  CompileRequest request;
  request.source = kProbeSource;
  request.file_name = "kforge_probe.cpp";
  return host.compile(request);
}

double MachineLimits::read_rate(double bytes) const {
  // The rate of the largest probed buffer that fits in `bytes` (the smallest buffer's when none
  // does): a working set of `bytes` sits at that level of the cache hierarchy or below it.
  double rate = read_bytes_per_s.front().second;
  for (const auto& [size, r] : read_bytes_per_s)
    if (size <= bytes) rate = r;
  return rate;
}

Result<ProbedLimits> probe_limits(const std::string& probe_binary, bool measure_again) {
  static std::map<std::string, ProbedLimits> probed;  // per worker
  if (auto it = probed.find(probe_binary); it != probed.end() && !measure_again) return it->second;
  // Kept beside the probe in the compile cache. A file without a latest run is from before it was
  // kept (or before the copy rate was measured): measured again, its best kept.
  const std::string saved = probe_binary + ".limits.json";
  const auto before = load_probed(saved);
  if (before && before->latest && !measure_again)
    return probed[probe_binary] = ProbedLimits{before->best, *before->latest};
  auto latest = measure(probe_binary);
  if (!latest) return latest.error();
  const ProbedLimits limits{before ? best_of(*latest, before->best) : *latest, *latest};
  // Losing the file only costs measuring again.
  if (Status s = write_file_atomically(saved, probed_to_json(limits).dump(), Durability::cache); !s)
    fmt::print(stderr, "kforge: the machine's limits are not kept: {}\n", s.error().message);
  return probed[probe_binary] = limits;
}

Result<Binary> compile_copy_probe(const Backend& gpu) {
  CompileRequest request;
  request.source = kCopySource;
  request.file_name = "kforge_copy.cu";
  return gpu.compile(request);
}

Result<double> copy_bandwidth(Device& device, const Binary& copy_probe) {
  const DeviceInfo& info = device.info();
  // Kept beside the kernel in the compile cache, per device model (one arch, or one
  // "vendor:arch:units" key, spans several models).
  const std::string saved = fmt::format("{}.{}.bandwidth.json", copy_probe.path,
                                        content_hash(device_key(info) + "\n" + info.name).substr(0, 16));
  if (auto text = read_file(saved)) {
    const json j = json::parse(*text, nullptr, false);
    if (j.is_object() && j.value("copy_bytes_per_s", 0.0) > 0) return j["copy_bytes_per_s"].get<double>();
  }
  auto module = device.load(copy_probe);
  if (!module) return module.error();
  // Two buffers of twice the L2 each (at least 64 MiB, at most an eighth of the memory, whole
  // blocks of 256 float4s): every pass streams from and to memory, not from the cache.
  constexpr unsigned kBlock = 256;
  constexpr std::size_t kChunk = kBlock * 16;
  std::size_t bytes = std::max<std::size_t>(2 * static_cast<std::size_t>(std::max<std::int64_t>(info.l2_bytes, 0)),
                                            std::size_t{64} << 20);
  if (info.memory_bytes > 0) bytes = std::min(bytes, static_cast<std::size_t>(info.memory_bytes) / 8);
  bytes = bytes / kChunk * kChunk;
  struct Buffer {  // freed on every way out
    Device& device;
    DevicePtr ptr = 0;
    ~Buffer() { device.free(ptr); }
  } in{device}, out{device};
  for (Buffer* b : {&in, &out}) {
    auto p = device.alloc(bytes);
    if (!p) return p.error();
    b->ptr = *p;
  }
  constexpr std::uint8_t kPattern = 0x3c;
  if (Status s = device.fill(in.ptr, kPattern, bytes); !s) return s.error();
  if (Status s = device.fill(out.ptr, 0, bytes); !s) return s.error();
  auto start = device.create_event(), end = device.create_event();
  if (!start || !end) return (!start ? start : end).error();
  unsigned long long n = bytes / 16;
  LaunchDims dims;
  dims.grid[0] = static_cast<unsigned>(n / kBlock);
  dims.block[0] = kBlock;
  void* args[] = {&in.ptr, &out.ptr, &n};
  // The first launch loads the code and touches every page; the best of the next five counts.
  double best_ms = 0;
  for (int rep = 0; rep < 6; ++rep) {
    Status s = device.record(**start);
    if (s) s = device.launch(**module, "kforge_copy", dims, args);
    if (s) s = device.record(**end);
    if (s) s = device.synchronize();
    if (!s) return s.error();
    auto ms = device.elapsed_ms(**start, **end);
    if (!ms) return ms.error();
    if (rep > 0 && *ms > 0 && (best_ms == 0 || *ms < best_ms)) best_ms = *ms;
  }
  // A copy that never happened must not pass for a fast one: the last bytes have arrived.
  std::uint8_t last[16] = {};
  if (Status s = device.copy_out(last, out.ptr + bytes - sizeof last, sizeof last); !s) return s.error();
  if (best_ms <= 0 || std::any_of(std::begin(last), std::end(last), [](std::uint8_t b) { return b != kPattern; }))
    return make_error(ErrorKind::internal, "{}: the copy kernel did not copy", info.name);
  const double rate = 2.0 * static_cast<double>(bytes) / (best_ms * 1e-3);  // each byte read once, written once
  // Losing the file only costs measuring again.
  const std::string text = json{{"device", info.name}, {"copy_bytes_per_s", rate}}.dump();
  if (Status s = write_file_atomically(saved, text, Durability::cache); !s)
    fmt::print(stderr, "kforge: the device's bandwidth is not kept: {}\n", s.error().message);
  return rate;
}

std::optional<MachineLimits> device_limits(const DeviceInfo& info, double copy_bytes_per_s) {
  if (info.memory_clock_khz <= 0 || info.memory_bus_bits <= 0 || info.compute_units <= 0 || info.clock_khz <= 0)
    return std::nullopt;
  // From the device's attributes, generously: double data rate over the bus (HBM and GDDR), four
  // times that for working sets that fit in L2, and 4096 FLOPs per clock per SM or CU (above any
  // f32 or TF32 tensor-core rate today), so that no honest kernel is ever called impossible; and
  // never below what the copy kernel was seen to move.
  const double memory = std::max(2.0 * info.memory_clock_khz * 1e3 * info.memory_bus_bits / 8, copy_bytes_per_s);
  MachineLimits m;
  m.read_bytes_per_s = {{0.0, 4 * memory}};
  if (info.l2_bytes > 0) m.read_bytes_per_s.emplace_back(static_cast<double>(info.l2_bytes), memory);
  m.flops_per_s = 4096.0 * info.compute_units * info.clock_khz * 1e3;
  return m;
}

MachineLimits device_roofline(const MachineLimits& limits, double copy_bytes_per_s) {
  if (copy_bytes_per_s <= 0) return limits;
  // Every timed call starts with L2 flushed: whatever the working set, its bytes come from memory.
  MachineLimits m = limits;
  m.read_bytes_per_s = {{0.0, copy_bytes_per_s}};
  return m;
}

MachineLimits host_roofline(const MachineLimits& limits) {
  MachineLimits m = limits;
  const double memory = limits.memory_read_bytes_per_s > 0 ? limits.memory_read_bytes_per_s
                        : limits.read_bytes_per_s.empty()  ? 0
                                                           : limits.read_bytes_per_s.back().second;
  if (memory > 0) m.read_bytes_per_s = {{0.0, memory}};
  return m;
}

namespace {

// The share of a shape's traffic that is reads: the bytes of its inputs (inout tensors counted as
// read and as written) over those of its inputs and outputs. 1 when the task has no tensors.
double read_share(const Task& task, const Bindings& dims) {
  double read = 0, written = 0;
  for (const auto& arg : task.args) {
    if (arg.shape.empty()) continue;
    const double bytes = static_cast<double>(tensor_bytes(arg.dtype, element_count(arg, dims)));
    if (arg.role != ArgRole::out) read += bytes;
    if (arg.role == ArgRole::out || arg.role == ArgRole::inout) written += bytes;
  }
  return read + written > 0 ? read / (read + written) : 1.0;
}

enum class Ideal { cheat_floor, roofline };

// The least time a shape of `task` can take on `m`: its FLOPs at the peak, and its bytes
// - cheat_floor: all at the read rate of the cache level they fit in, ignoring the copy rate, so
//   that the bound stays low enough never to reject an honest kernel;
// - roofline: the reads at the read rate and, where a copy rate was measured, reads and writes
//   together at it (a machine may read and write at once faster than it reads alone, or slower).
double ideal_seconds(const Task& task, const Bindings& dims, const MachineLimits& m, Ideal ideal) {
  const double bytes = bytes_of(task, dims), flops = flops_of(task, dims);
  const double compute_s = m.flops_per_s > 0 ? flops / m.flops_per_s : 0;
  if (m.read_bytes_per_s.empty()) return compute_s;
  if (ideal == Ideal::cheat_floor || m.memory_copy_bytes_per_s <= 0)
    return std::max(bytes / m.read_rate(bytes), compute_s);
  return std::max({bytes * read_share(task, dims) / m.read_rate(bytes), bytes / m.memory_copy_bytes_per_s, compute_s});
}

}  // namespace

double bytes_of(const Task& task, const Bindings& dims) {
  return task.bytes ? static_cast<double>(task.bytes->eval(dims).value()) : 0;
}

double flops_of(const Task& task, const Bindings& dims) {
  return task.flops ? static_cast<double>(task.flops->eval(dims).value()) : 0;
}

double roofline_seconds(const Task& task, const Bindings& dims, const MachineLimits& roofline) {
  return ideal_seconds(task, dims, roofline, Ideal::roofline);
}

void apply_physics(const Task& task, const MachineLimits& limits, EvalResult& result,
                   const std::optional<MachineLimits>& roofline) {
  const MachineLimits& honest = roofline ? *roofline : limits;
  if (!honest.read_bytes_per_s.empty()) result.roof_gbps = honest.read_bytes_per_s.back().second / 1e9;
  result.roof_gflops = honest.flops_per_s / 1e9;
  for (auto& shape : result.shapes) {
    if (!shape.timing || shape.timing->median_us <= 0) continue;
    const double floor_us = ideal_seconds(task, shape.dims, limits, Ideal::cheat_floor) * 1e6;
    if (floor_us <= 0) continue;
    shape.floor_us = roofline_seconds(task, shape.dims, honest) * 1e6;
    shape.roofline_pct = 100 * shape.floor_us / shape.timing->median_us;
    // Half the ideal time: room for a kernel that beats our probe loops, none for a broken timer.
    if (result.status == EvalStatus::ok && shape.timing->median_us < 0.5 * floor_us) {
      const double bytes = bytes_of(task, shape.dims), flops = flops_of(task, shape.dims);
      result.status = EvalStatus::rejected_cheat;
      result.message = fmt::format(
          "faster than physics at {}: median {:.3g} us, but {:.3g} bytes and {:.3g} FLOPs take at least {:.3g} us "
          "on this machine ({:.3g} GB/s, {:.3g} GFLOP/s measured)",
          shape_label(shape.dims), shape.timing->median_us, bytes, flops, floor_us, limits.read_rate(bytes) / 1e9,
          limits.flops_per_s / 1e9);
    }
  }
}

}  // namespace kforge
