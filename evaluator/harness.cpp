// The evaluation protocol: compile, then run the reference and the candidate in a child process
// on the same seeded inputs, compare, and time.
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <cmath>
#include <cstring>
#include <atomic>
#include <functional>
#include <thread>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "evaluator/internal.hpp"

namespace kforge {

constexpr int kMaxMismatches = 5;

std::int64_t element_count(const TaskArg& arg, const Bindings& dims) {
  std::int64_t count = 1;
  for (const auto& d : arg.shape) count *= d.eval(dims).value();  // validated by the loader
  return count;
}

// Elements in a buffer of `arg`'s dtype.
size_t buffer_elements(const Buffer& buffer, DType dtype) {
  return buffer.bytes / block_bytes(dtype) * block_elements(dtype);
}

std::int64_t output_elements(const Task& task, const Bindings& dims) {
  std::int64_t total = 0;
  for (const auto& arg : task.args)
    if (arg.role == ArgRole::out || arg.role == ArgRole::inout) total += element_count(arg, dims);
  return total;
}

// `n` real values drawn from `d` (integer ranges give whole numbers).
void draw_reals(float* p, size_t n, const Distribution& d, std::mt19937_64& rng) {
  if (d.kind == Distribution::Kind::normal) {
    std::normal_distribution<float> pick(static_cast<float>(d.a), static_cast<float>(d.b));
    for (size_t i = 0; i < n; ++i) p[i] = pick(rng);
  } else if (d.kind == Distribution::Kind::uniform) {
    std::uniform_real_distribution<float> pick(static_cast<float>(d.a), static_cast<float>(d.b));
    for (size_t i = 0; i < n; ++i) p[i] = pick(rng);
  } else {
    std::uniform_int_distribution<std::int64_t> pick(static_cast<std::int64_t>(d.a), static_cast<std::int64_t>(d.b));
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(pick(rng));
  }
}

// Fills a tensor from its distribution: i32 drawn as integers, f32 as drawn, f16 rounded from the
// f32 draws, q8_0 and q4_0 quantized from them block by block as ggml does.
void fill(Buffer& buffer, const TaskArg& arg, std::mt19937_64& rng, const Bindings& dims) {
  const size_t n = buffer_elements(buffer, arg.dtype);
  const Distribution d = arg.dist.at(dims);
  if (arg.dtype == DType::i32) {
    auto* p = reinterpret_cast<std::int32_t*>(buffer.data());
    std::uniform_int_distribution<std::int64_t> pick(static_cast<std::int64_t>(d.a), static_cast<std::int64_t>(d.b));
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<std::int32_t>(pick(rng));
    return;
  }
  if (arg.dtype == DType::f32) {
    draw_reals(reinterpret_cast<float*>(buffer.data()), n, d, rng);
    return;
  }
  std::vector<float> values(n);
  draw_reals(values.data(), n, d, rng);
  if (arg.dtype == DType::f16) {
    auto* p = reinterpret_cast<std::uint16_t*>(buffer.data());
    for (size_t i = 0; i < n; ++i) p[i] = f32_to_f16(values[i]);
  } else {
    quantize(arg.dtype, values.data(), buffer.data(), static_cast<std::int64_t>(n));
  }
}

// Trial 0 fills inputs as the task declares; later trials stretch each real distribution's
// spread by up to 2x either way and shift its centre by up to a quarter spread, so that a kernel
// tuned to one scale (or caching one answer) meets others. Integer ranges (ids, positions) stay.
TaskArg varied(const TaskArg& arg, int trial, std::mt19937_64& rng) {
  TaskArg out = arg;
  if (trial == 0 || arg.dist.kind == Distribution::Kind::integers) return out;
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  const double stretch = std::exp2(unit(rng)), shift = 0.25 * unit(rng);
  Distribution& d = out.dist;
  if (d.kind == Distribution::Kind::normal) {
    d.a += shift * d.b;
    d.b *= stretch;
  } else {
    const double centre = (d.a + d.b) / 2, half = (d.b - d.a) / 2;
    d.a = centre + shift * half - stretch * half;
    d.b = centre + shift * half + stretch * half;
  }
  return out;
}

CallArgs make_inputs(const Task& task, const Bindings& dims, std::mt19937_64& rng, int trial) {
  CallArgs call;
  for (const auto& arg : task.args) {
    if (arg.is_tensor()) {
      Buffer b = Buffer::make(static_cast<size_t>(tensor_bytes(arg.dtype, element_count(arg, dims))));
      if (arg.role == ArgRole::out)
        std::memset(b.data(), 0, b.bytes);
      else
        fill(b, varied(arg, trial, rng), rng, dims);
      call.buffers.push_back(std::move(b));
    } else {
      Buffer b = Buffer::make(4);
      if (arg.role == ArgRole::size) {
        std::int32_t v = static_cast<std::int32_t>(dims.at(arg.name));
        std::memcpy(b.data(), &v, 4);
      } else if (arg.dtype == DType::f32) {
        float v = static_cast<float>(arg.value);
        std::memcpy(b.data(), &v, 4);
      } else {
        std::int32_t v = static_cast<std::int32_t>(arg.value);
        std::memcpy(b.data(), &v, 4);
      }
      call.buffers.push_back(std::move(b));
    }
  }
  return call;
}

// The candidate's own copy: inputs shared by value (copied), outputs poisoned with 0xFF (a NaN
// in f32), inout tensors copied from the initial values.
CallArgs candidate_args(const Task& task, const CallArgs& initial) {
  CallArgs call;
  for (size_t i = 0; i < task.args.size(); ++i) {
    Buffer b = initial.buffers[i].clone();
    if (task.args[i].role == ArgRole::out) std::memset(b.data(), 0xFF, b.bytes);
    call.buffers.push_back(std::move(b));
  }
  return call;
}

// Element i of an output (f32, f16 or i32; quantized tensors are never outputs) as a double.
double element(const Buffer& b, DType dtype, size_t i) {
  if (dtype == DType::i32) return reinterpret_cast<const std::int32_t*>(b.data())[i];
  if (dtype == DType::f16) return f16_to_f32(reinterpret_cast<const std::uint16_t*>(b.data())[i]);
  return reinterpret_cast<const float*>(b.data())[i];
}

void compare(const Task& task, const CallArgs& got, const CallArgs& want, ShapeResult& out) {
  out.correct = true;
  for (size_t a = 0; a < task.args.size(); ++a) {
    const TaskArg& arg = task.args[a];
    if (arg.role != ArgRole::out && arg.role != ArgRole::inout) continue;
    const size_t n = buffer_elements(want.buffers[a], arg.dtype);
    for (size_t i = 0; i < n; ++i) {
      double g = element(got.buffers[a], arg.dtype, i), w = element(want.buffers[a], arg.dtype, i);
      bool ok;
      if (std::isnan(w) || std::isnan(g)) {
        ok = std::isnan(w) && std::isnan(g);
      } else if (std::isinf(w) || std::isinf(g)) {
        ok = g == w;
      } else {
        double abs_error = std::fabs(g - w);
        out.max_abs_error = std::max(out.max_abs_error, abs_error);
        if (w != 0) out.max_rel_error = std::max(out.max_rel_error, abs_error / std::fabs(w));
        ok = arg.dtype == DType::i32 ? g == w : abs_error <= task.atol + task.rtol * std::fabs(w);
      }
      if (!ok) {
        ++out.wrong_elements;
        if (out.mismatches.size() < kMaxMismatches)
          out.mismatches.push_back({arg.name, static_cast<std::int64_t>(i), g, w});
        out.correct = false;
      }
    }
  }
}

// Twice the last-level cache, capped: VMs report the whole socket's L3 (300 MiB here), and
// writing 600 MiB before each call would cost ~60 ms of flushing per sample.
size_t flush_bytes() {
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  long llc = l3 > 0 ? l3 : l2 > 0 ? l2 : 32l << 20;
  return std::min<size_t>(2 * static_cast<size_t>(llc), 64u << 20);
}

TimingStats summarize(std::vector<double> samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  TimingStats s;
  s.n = static_cast<int>(samples_us.size());
  if (samples_us.empty()) return s;
  auto quantile = [&](double q) {
    double pos = q * (s.n - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, samples_us.size() - 1);
    return samples_us[lo] + (pos - lo) * (samples_us[hi] - samples_us[lo]);
  };
  s.min_us = samples_us.front();
  s.median_us = quantile(0.5);
  s.p20_us = quantile(0.2);
  s.p80_us = quantile(0.8);
  double sum = 0, sq = 0;
  for (double v : samples_us) sum += v;
  s.mean_us = sum / s.n;
  for (double v : samples_us) sq += (v - s.mean_us) * (v - s.mean_us);
  s.std_us = s.n > 1 ? std::sqrt(sq / (s.n - 1)) : 0;
  s.cv = s.mean_us > 0 ? s.std_us / s.mean_us : 0;
  return s;
}

// What a candidate call did wrong besides its values: writing outside a tensor, or changing an
// input. `buffers` are the call's arguments; empty when it kept to its outputs.
std::string misbehaviour(const Task& task, const std::vector<const Buffer*>& buffers,
                         const std::vector<std::string>& input_hashes) {
  for (size_t i = 0; i < task.args.size(); ++i) {
    if (!task.args[i].is_tensor()) continue;
    if (!buffers[i]->guards_intact())
      return fmt::format("the kernel wrote outside '{}' (the bytes just before or after it changed)", task.args[i].name);
    if (task.args[i].role == ArgRole::in &&
        content_hash({reinterpret_cast<const char*>(buffers[i]->data()), buffers[i]->bytes}) != input_hashes[i])
      return fmt::format("the kernel modified its input '{}'", task.args[i].name);
  }
  return "";
}

std::vector<const Buffer*> views(const CallArgs& args) {
  std::vector<const Buffer*> out;
  for (const auto& b : args.buffers) out.push_back(&b);
  return out;
}

bool is_output(const TaskArg& arg) {
  return arg.role == ArgRole::out || arg.role == ArgRole::inout;
}

std::vector<std::string> input_hashes(const Task& task, const CallArgs& args) {
  std::vector<std::string> hashes(task.args.size());
  for (size_t i = 0; i < task.args.size(); ++i)
    if (task.args[i].role == ArgRole::in)
      hashes[i] = content_hash({reinterpret_cast<const char*>(args.buffers[i].data()), args.buffers[i].bytes});
  return hashes;
}


// A kernel, timed or not, with buffers of its own for its outputs; the inputs of each call come
// from the pool (shared, read-only).
struct Runner {
  CallFn fn;
  CallArgs own;  // out and inout tensors; the other slots stay empty
  std::vector<double> samples_us;

  Runner(const Task& task, CallFn f, const CallArgs& shape) : fn(f) {
    for (size_t i = 0; i < task.args.size(); ++i)
      own.buffers.push_back(is_output(task.args[i]) ? Buffer::make(shape.buffers[i].bytes) : Buffer{});
  }
  std::vector<const Buffer*> arguments(const Task& task, const CallArgs& inputs) const {
    std::vector<const Buffer*> out;
    for (size_t i = 0; i < task.args.size(); ++i)
      out.push_back(is_output(task.args[i]) ? &own.buffers[i] : &inputs.buffers[i]);
    return out;
  }
  // Poisons the outputs (restores inout tensors from `inputs`), then calls; the time of the call
  // alone is recorded when `record`. `before` runs last before the clock starts (the cache flush).
  void call(const Task& task, const CallArgs& inputs, bool record, const std::function<void()>& before = {}) {
    for (size_t i = 0; i < task.args.size(); ++i) {
      Buffer& b = own.buffers[i];
      if (task.args[i].role == ArgRole::out) std::memset(b.data(), 0xFF, b.bytes);
      if (task.args[i].role == ArgRole::inout) std::memcpy(b.data(), inputs.buffers[i].data(), b.bytes);
    }
    std::vector<void*> pointers;
    for (const Buffer* b : arguments(task, inputs)) pointers.push_back(b->data());
    if (before) before();
    watchdog.arm();
    const auto t0 = Clock::now();
    fn(pointers.data());
    const auto t1 = Clock::now();
    watchdog.disarm();
    if (record) samples_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
};

Bindings call_dims(const Task& task, const CallArgs& args) {
  Bindings dims;
  for (size_t i = 0; i < task.args.size(); ++i)
    if (task.args[i].role == ArgRole::size) {
      std::int32_t v = 0;
      std::memcpy(&v, args.buffers[i].data(), 4);
      dims[task.args[i].name] = v;
    }
  return dims;
}

// Draws `count` elements of every input tensor of `inputs` afresh, at random positions, from the
// tensor's distribution: no two timed calls see the same inputs, so no answer can be replayed.
// A quantized tensor gets `count` whole blocks drawn and quantized afresh. The offsets are of
// block_bytes(dtype) bytes each.
void redraw_some(const Task& task, CallArgs& inputs, std::mt19937_64& rng, std::vector<std::vector<size_t>>* changed,
                 int count) {
  if (changed) changed->assign(task.args.size(), {});
  const Bindings dims = call_dims(task, inputs);
  for (size_t i = 0; i < task.args.size(); ++i) {
    const TaskArg& arg = task.args[i];
    if (arg.role != ArgRole::in && arg.role != ArgRole::inout) continue;
    Buffer& b = inputs.buffers[i];
    const size_t unit = static_cast<size_t>(block_bytes(arg.dtype));
    const size_t n = b.bytes / unit;
    if (n == 0) continue;
    Buffer one = Buffer::make(unit);
    for (int k = 0; k < count; ++k) {
      fill(one, arg, rng, dims);
      const size_t offset = unit * (rng() % n);
      std::memcpy(b.data() + offset, one.data(), unit);
      if (changed) (*changed)[i].push_back(offset);
    }
  }
}

// Times the candidate (timed[0]) and, when given, the baseline (timed[1]) interleaved, call for
// call, so both see the same machine. Call i reads pool input set i mod |pool|, after 16 elements
// of each input were drawn afresh: no call finds the previous call's data in the cache, and none
// sees inputs seen before, so a stored answer is never right. Before every call, outside the timed
// window, the outputs are poisoned (inout tensors restored) and the caches flushed. A random eighth
// of the candidate's calls, and one more call after the last, are checked against the reference
// on the same inputs, again outside the window: every timed call must really compute.
std::optional<TimedFailure> check_baseline(const Task& task, const CallArgs& got, const CallArgs& want) {
  ShapeResult check;
  compare(task, got, want, check);
  if (check.correct) return std::nullopt;
  const Mismatch& m = check.mismatches.front();
  ShapeResult not_the_candidates;
  not_the_candidates.correct = true;
  return TimedFailure{fmt::format("the task's baseline computed something else ({}[{}] = {}, want {}, {} of its "
                                  "outputs wrong): speedups against it would mean nothing; fix the task",
                                  m.tensor, m.index, format_value(m.got), format_value(m.want), check.wrong_elements),
                      not_the_candidates};
}

std::optional<TimedFailure> time_interleaved(const Task& task, std::vector<Runner>& timed, Runner& reference,
                                             std::vector<CallArgs>& pool, const EvalOptions& options,
                                             std::vector<std::byte>& flush_buffer, std::mt19937_64& rng) {
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  unsigned char flush_value = 0;
  auto flush = [&] {
    if (!flush_buffer.empty()) std::memset(flush_buffer.data(), ++flush_value, flush_buffer.size());
  };
  // One call of the candidate on `inputs`, checked: the reference's answer, and nothing else touched.
  auto checked_call = [&](const CallArgs& inputs, bool record) -> std::optional<TimedFailure> {
    const auto hashes = input_hashes(task, inputs);
    timed[0].call(task, inputs, record, flush);
    std::string why = misbehaviour(task, timed[0].arguments(task, inputs), hashes);
    reference.call(task, inputs, false);
    ShapeResult check;
    compare(task, timed[0].own, reference.own, check);
    if (why.empty() && check.correct) return std::nullopt;
    return TimedFailure{why, check};
  };

  size_t next = 0;
  const auto warmup_start = Clock::now();
  for (int calls = 0; calls < 3 || seconds_since(warmup_start) < options.warmup_s; ++calls, ++next)
    for (auto& t : timed) t.call(task, pool[next % pool.size()], false);

  const auto start = Clock::now();
  auto settled = [&](const Runner& t) {
    const TimingStats s = summarize(t.samples_us);
    return s.std_us / std::sqrt(s.n) < options.target_relative_se * s.median_us;
  };
  for (;; ++next) {
    CallArgs& inputs = pool[next % pool.size()];
    redraw_some(task, inputs, rng);
    if (rng() % 8 == 0) {
      if (auto failure = checked_call(inputs, true)) return failure;
    } else {
      timed[0].call(task, inputs, true, flush);
    }
    for (size_t t = 1; t < timed.size(); ++t) timed[t].call(task, inputs, true, flush);
    const int n = static_cast<int>(timed[0].samples_us.size());
    if (n >= options.max_repeats) break;
    if (n < options.min_repeats) continue;
    if (seconds_since(start) >= options.max_time_per_shape_s) break;
    if (std::all_of(timed.begin(), timed.end(), settled)) break;
  }
  CallArgs& inputs = pool[next % pool.size()];
  redraw_some(task, inputs, rng);
  if (auto failure = checked_call(inputs, false)) return failure;
  if (timed.size() < 2) return std::nullopt;
  timed[1].call(task, inputs, false);  // the baseline, on the inputs the reference just answered
  return check_baseline(task, timed[1].own, reference.own);
}

// The input sets the timed calls cycle through: up to 8, fewer when a shape's inputs are large
// (at most 512 MiB in all, at least 2). Set 0 is drawn like trial 0's inputs; the others are
// copies of it with every input tensor rotated by a random offset (same values, other positions),
// which costs a memcpy rather than a fresh draw.
std::vector<CallArgs> timing_pool(const Task& task, const Bindings& dims, std::mt19937_64 inputs_rng,
                                  std::mt19937_64& rng) {
  std::vector<CallArgs> pool;
  pool.push_back(make_inputs(task, dims, inputs_rng));
  size_t input_bytes = 1;
  for (size_t i = 0; i < task.args.size(); ++i)
    if (task.args[i].role == ArgRole::in || task.args[i].role == ArgRole::inout) input_bytes += pool[0].buffers[i].bytes;
  const size_t count = std::clamp<size_t>((size_t{512} << 20) / input_bytes, 2, 8);
  while (pool.size() < count) {
    CallArgs entry = pool[0].clone();
    for (size_t i = 0; i < task.args.size(); ++i) {
      if (task.args[i].role != ArgRole::in && task.args[i].role != ArgRole::inout) continue;
      // Rotated by whole elements, or whole blocks of a quantized tensor.
      const Buffer& from = pool[0].buffers[i];
      const size_t unit = static_cast<size_t>(block_bytes(task.args[i].dtype)), n = from.bytes / unit;
      if (n < 2) continue;
      const size_t cut = unit * (1 + rng() % (n - 1));
      std::memcpy(entry.buffers[i].data(), from.data() + cut, from.bytes - cut);
      std::memcpy(entry.buffers[i].data() + (from.bytes - cut), from.data(), cut);
    }
    pool.push_back(std::move(entry));
  }
  return pool;
}

// A shape the candidate has never been shown: every size drawn between its smallest and largest
// check value, within the task's constraints, and different from every listed shape.
std::optional<Bindings> held_out_shape(const Task& task, std::mt19937_64& rng) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    Bindings dims;
    for (const auto& symbol : task.size_symbols()) {
      std::int64_t smallest = task.check_shapes.front().at(symbol), largest = smallest;
      for (const auto& shape : task.check_shapes) {
        smallest = std::min(smallest, shape.at(symbol));
        largest = std::max(largest, shape.at(symbol));
      }
      dims[symbol] = std::uniform_int_distribution<std::int64_t>(smallest, largest)(rng);
    }
    bool ok = std::all_of(task.constraints.begin(), task.constraints.end(),
                          [&](const Expr& c) { return c.eval(dims).ok() && *c.eval(dims) != 0; }) &&
              !block_problem(task, dims) && !range_problem(task, dims);
    for (const auto* list : {&task.check_shapes, &task.bench_shapes})
      ok = ok && std::find(list->begin(), list->end(), dims) == list->end();
    if (ok) return dims;
  }
  return std::nullopt;
}

// The cpu target: kernels called in this process (the evaluation child) through their trampolines.
class HostTarget final : public Target {
 public:
  HostTarget(CallFn candidate, CallFn baseline, bool flush) : candidate_(candidate), baseline_(baseline), flush_(flush) {}
  Status run(const Task&, CallArgs& args) override {
    watchdog.arm();
    candidate_(args.pointers().data());
    watchdog.disarm();
    return {};
  }
  bool has_baseline() const override { return baseline_ != nullptr; }
  std::optional<TimedFailure> time(const Task& task, CallFn reference, std::vector<CallArgs>& pool,
                                   const EvalOptions& options, std::mt19937_64& rng, std::vector<double>& candidate_us,
                                   std::vector<double>& baseline_us) override {
    if (flush_ && flush_buffer_.empty()) flush_buffer_.resize(flush_bytes());  // (64 MiB: only when timing)
    std::vector<Runner> timed;
    timed.emplace_back(task, candidate_, pool[0]);
    if (baseline_) timed.emplace_back(task, baseline_, pool[0]);
    Runner oracle(task, reference, pool[0]);
    auto failure = time_interleaved(task, timed, oracle, pool, options, flush_buffer_, rng);
    candidate_us = std::move(timed[0].samples_us);
    if (baseline_) baseline_us = std::move(timed[1].samples_us);
    return failure;
  }

 private:
  CallFn candidate_, baseline_;
  bool flush_;
  std::vector<std::byte> flush_buffer_;
};

constexpr int kTrials = 3;


// Runs in the child: everything that executes candidate code.
// How much work one call on `dims` is, to scale a time measured on one shape to another: the
// task's FLOPs, else its tensors' elements.
double work_units(const Task& task, const Bindings& dims) {
  if (task.flops)
    if (auto f = task.flops->eval(dims); f && *f > 0) return static_cast<double>(*f);
  double elements = 0;
  for (const auto& arg : task.args)
    if (arg.is_tensor()) elements += static_cast<double>(element_count(arg, dims));
  return std::max(1.0, elements);
}

// The candidate's call failed outright (a launch error, an illegal address): the status says how.
EvalResult failed_call(EvalResult result, const Target& target, const Error& error, ShapeResult shape) {
  result.status = target.dead() ? EvalStatus::crash : EvalStatus::runtime_error;
  result.message = fmt::format("{} at {}", error.message, shape_label(shape.dims));
  shape.correct = false;
  result.shapes.push_back(std::move(shape));
  return result;
}

EvalResult run_protocol(const Task& task, CallFn reference, Target& target, const EvalOptions& options,
                        std::uint64_t seed) {
  EvalResult result;
  result.seed = seed;
  std::vector<std::pair<Bindings, bool>> shapes;
  for (const auto& d : task.check_shapes) shapes.emplace_back(d, false);
  for (const auto& d : task.bench_shapes) shapes.emplace_back(d, true);
  std::mt19937_64 shape_picker(seed ^ 0x5DEECE66Dull);  // (consistent() draws the same one)
  if (auto extra = held_out_shape(task, shape_picker)) shapes.emplace_back(*extra, false);

  // Correctness first, on every shape, kTrials times each with other inputs; timing only once
  // all of them pass. Every (shape, trial) has its own random stream, so the timing phase can
  // regenerate trial 0's inputs exactly. The candidate runs before the reference, so it cannot
  // find the answer in memory.
  auto stream = [seed](size_t s, int trial) {
    return std::mt19937_64(seed ^ (0x9E3779B97F4A7C15ull * (s + 1)) ^ (0xD1B54A32D192ED03ull * trial));
  };
  // The watchdog's limit for one call: 1000x the reference's time for that much work, at least
  // 2 s (the scalar reference is no speed record), at most the whole timeout. The pace starts from
  // one reference call on throwaway inputs (the candidate never sees its answer).
  double reference_pace = 0;  // seconds per unit of work
  {
    std::mt19937_64 throwaway(seed ^ 0xC0FFEE123ull);
    CallArgs probe = make_inputs(task, shapes.front().first, throwaway);
    const auto t0 = Clock::now();
    reference(probe.pointers().data());
    reference_pace = std::chrono::duration<double>(Clock::now() - t0).count() / work_units(task, shapes.front().first);
  }
  auto limit_for = [&](const Bindings& dims) {
    return std::min(options.timeout_s, std::max(2.0, 1000 * reference_pace * work_units(task, dims)));
  };
  for (size_t s = 0; s < shapes.size(); ++s) {
    watchdog.limit_s = limit_for(shapes[s].first);
    ShapeResult shape;
    shape.dims = shapes[s].first;
    shape.bench = shapes[s].second;
    shape.held_out = s >= task.check_shapes.size() + task.bench_shapes.size();
    shape.correct = true;
    for (int trial = 0; trial < kTrials && shape.correct; ++trial) {
      auto rng = stream(s, trial);
      CallArgs want = make_inputs(task, shape.dims, rng, trial);
      const auto hashes = input_hashes(task, want);
      CallArgs got = candidate_args(task, want);
      if (Status call = target.run(task, got); !call) return failed_call(std::move(result), target, call.error(), shape);
      if (std::string why = misbehaviour(task, views(got), hashes); !why.empty()) {
        result.status = EvalStatus::incorrect;
        result.message = fmt::format("{} at {}", why, shape_label(shape.dims));
        shape.correct = false;
        result.shapes.push_back(std::move(shape));
        return result;
      }
      if (trial == 0) {  // determinism: a second run on the same inputs agrees within tolerance
        CallArgs again = candidate_args(task, want);
        if (Status call = target.run(task, again); !call)
          return failed_call(std::move(result), target, call.error(), shape);
        ShapeResult rerun;  // (an OpenMP reduction may sum in another order: bitwise is too strict)
        compare(task, again, got, rerun);
        if (!rerun.correct) {
          const Mismatch& m = rerun.mismatches.front();
          result.status = EvalStatus::incorrect;
          result.message = fmt::format("two runs on the same inputs disagree at {}[{}] ({} then {}) at {}: the "
                                       "kernel is not deterministic (a race?)",
                                       m.tensor, m.index, format_value(m.want), format_value(m.got),
                                       shape_label(shape.dims));
          shape.correct = false;
          result.shapes.push_back(std::move(shape));
          return result;
        }
      }
      const auto reference_start = Clock::now();
      reference(want.pointers().data());
      reference_pace = std::max(reference_pace, std::chrono::duration<double>(Clock::now() - reference_start).count() /
                                                    work_units(task, shape.dims));
      compare(task, got, want, shape);
    }
    result.shapes.push_back(std::move(shape));
  }
  for (const auto& shape : result.shapes) {
    if (shape.correct) continue;
    const Mismatch& m = shape.mismatches.front();
    result.status = EvalStatus::incorrect;
    result.message = fmt::format("{}[{}] = {} (want {}) at {}{}; {} of {} output elements wrong", m.tensor, m.index,
                                 format_value(m.got), format_value(m.want), shape_label(shape.dims),
                                 shape.held_out ? " (a held-out shape)" : "", shape.wrong_elements,
                                 output_elements(task, shape.dims));
    return result;
  }

  if (options.time_bench_shapes) {
    std::mt19937_64 rng(seed ^ 0x2545F4914F6CDD1Dull);  // which timed calls are checked
    for (size_t s = 0; s < shapes.size(); ++s) {
      ShapeResult& shape = result.shapes[s];
      if (!shape.bench) continue;
      std::vector<CallArgs> pool = timing_pool(task, shape.dims, stream(s, 0), rng);
      std::vector<double> candidate_us, baseline_us;
      watchdog.limit_s = limit_for(shape.dims);
      auto failure = target.time(task, reference, pool, options, rng, candidate_us, baseline_us);
      if (target.dead()) {
        result.status = EvalStatus::crash;
        result.message = fmt::format("{} at {}", failure ? failure->first : "the device died", shape_label(shape.dims));
        shape.correct = false;
        return result;
      }
      if (failure) {
        const auto& [why, check] = *failure;
        // A failure that found every output right is the device's or the harness's, not a mismatch.
        result.status = check.correct ? EvalStatus::runtime_error : EvalStatus::incorrect;
        if (!why.empty()) {
          result.message = fmt::format("while timed, {} at {}", why, shape_label(shape.dims));
        } else {
          const Mismatch& m = check.mismatches.front();
          result.message = fmt::format("the timed calls computed something else: {}[{}] = {} (want {}) at {}",
                                       m.tensor, m.index, format_value(m.got), format_value(m.want),
                                       shape_label(shape.dims));
        }
        shape.correct = false;
        shape.wrong_elements = check.wrong_elements;
        shape.mismatches = check.mismatches;
        return result;
      }
      shape.timing = summarize(candidate_us);
      if (!baseline_us.empty()) {
        shape.baseline_timing = summarize(baseline_us);
        shape.speedup = shape.baseline_timing->median_us / shape.timing->median_us;
      }
      const double seconds = shape.timing->median_us * 1e-6;
      if (task.bytes && seconds > 0)
        shape.gbps = static_cast<double>(task.bytes->eval(shape.dims).value()) / seconds / 1e9;
      if (task.flops && seconds > 0)
        shape.gflops = static_cast<double>(task.flops->eval(shape.dims).value()) / seconds / 1e9;
    }
  }
  double log_sum = 0;
  int timed_shapes = 0;
  for (const auto& shape : result.shapes)
    if (shape.speedup > 0) log_sum += std::log(shape.speedup), ++timed_shapes;
  if (timed_shapes) result.speedup = std::exp(log_sum / timed_shapes);
  result.status = EvalStatus::ok;
  return result;
}

// A result the harness could have produced: every shape of the task, in order, and for ok every
// shape correct and every bench shape timed. Rejects the crudest forgeries by the candidate,
// which runs in the same process; isolating it from the result channel is the worker's job.
bool consistent(const Task& task, const EvalResult& r, const EvalOptions& options, std::uint64_t seed) {
  if (r.seed != seed) return false;
  // The held-out shape is the one this seed draws, and an ok result must have checked it.
  std::mt19937_64 shape_picker(seed ^ 0x5DEECE66Dull);
  const auto held_out = held_out_shape(task, shape_picker);
  if (r.status == EvalStatus::ok && held_out && (r.shapes.empty() || r.shapes.back().dims != *held_out)) return false;
  for (const auto& s : r.shapes)
    for (const auto* t : {&s.timing, &s.baseline_timing})
      if (*t && ((*t)->n > options.max_repeats || (*t)->min_us > (*t)->median_us ||
                 ((*t)->n > 0 && s.timing.has_value() && t == &s.timing &&
                  !((*t)->p20_us <= (*t)->median_us && (*t)->median_us <= (*t)->p80_us))))
        return false;
  std::vector<std::pair<Bindings, bool>> expected;
  for (const auto& d : task.check_shapes) expected.emplace_back(d, false);
  for (const auto& d : task.bench_shapes) expected.emplace_back(d, true);
  if (r.status == EvalStatus::runtime_error && r.shapes.empty()) return true;  // could not load a library
  // Shapes in the task's order; a failure may stop early; one held-out shape may follow.
  size_t listed = r.shapes.size();
  if (listed > 0 && r.shapes.back().held_out) {
    --listed;
    const Bindings& dims = r.shapes.back().dims;
    for (const auto& c : task.constraints)
      if (!c.eval(dims).ok() || *c.eval(dims) == 0) return false;
    if (block_problem(task, dims)) return false;
  }
  if (listed > expected.size() || (r.status == EvalStatus::ok && listed != expected.size())) return false;
  for (size_t i = 0; i < listed; ++i) {
    const ShapeResult& s = r.shapes[i];
    if (s.dims != expected[i].first || s.bench != expected[i].second || s.held_out) return false;
    if (r.status == EvalStatus::ok &&
        (!s.correct || (s.bench && options.time_bench_shapes && (!s.timing || s.timing->n < options.min_repeats))))
      return false;
  }
  if (r.status == EvalStatus::ok && listed < r.shapes.size() && !r.shapes.back().correct) return false;
  return r.status == EvalStatus::ok || r.status == EvalStatus::incorrect || r.status == EvalStatus::runtime_error;
}

// ---- task validation: the reference must compute from its inputs -------------------------------

namespace {

// The bytes of every out and inout tensor after `reference` ran on a copy of `inputs`.
std::string reference_outputs(const Task& task, CallFn reference, const CallArgs& inputs) {
  CallArgs args = inputs.clone();
  reference(args.pointers().data());
  std::string out;
  for (size_t i = 0; i < task.args.size(); ++i)
    if (is_output(task.args[i])) out.append(reinterpret_cast<const char*>(args.buffers[i].data()), args.buffers[i].bytes);
  return out;
}

}  // namespace

// Runs in a child of the worker. The check shapes, smallest first: the reference's outputs must
// differ between two seeds on at least one of them, and drawing any one input tensor afresh must
// change them on at least one. (A degenerate shape can make an honest output constant, such as
// the argmax of one logit, so a later shape may supply the difference.) Empty: no problem found.
std::string reference_problem(const Task& task, CallFn reference) {
  std::vector<Bindings> shapes = task.check_shapes;
  auto size = [&](const Bindings& dims) {
    double total = 0;
    for (const auto& arg : task.args)
      if (arg.is_tensor()) total += static_cast<double>(element_count(arg, dims));
    return total;
  };
  std::stable_sort(shapes.begin(), shapes.end(), [&](const Bindings& a, const Bindings& b) { return size(a) < size(b); });
  bool varies = false;
  for (const auto& dims : shapes) {
    std::mt19937_64 first(0x5EED0001), second(0x5EED0002);
    if (reference_outputs(task, reference, make_inputs(task, dims, first)) !=
        reference_outputs(task, reference, make_inputs(task, dims, second))) {
      varies = true;
      break;
    }
  }
  if (!varies)
    return fmt::format("the reference gives the same outputs for two different draws of its inputs on every check shape "
                       "(smallest {}): it does not compute from its inputs (a constant, or outputs it never writes?)",
                       shape_label(shapes.front()));
  for (size_t i = 0; i < task.args.size(); ++i) {
    const TaskArg& arg = task.args[i];
    if (arg.role != ArgRole::in && arg.role != ArgRole::inout) continue;
    bool matters = false;
    for (const auto& dims : shapes) {
      std::mt19937_64 rng(0x5EED0001), other(0x5EED0003);
      const CallArgs inputs = make_inputs(task, dims, rng);
      CallArgs perturbed = inputs.clone();
      fill(perturbed.buffers[i], arg, other, dims);
      if (reference_outputs(task, reference, inputs) != reference_outputs(task, reference, perturbed)) {
        matters = true;
        break;
      }
    }
    if (!matters)
      return fmt::format("the reference gives the same outputs when its input '{}' is drawn afresh, on every check "
                         "shape: it ignores '{}'",
                         arg.name, arg.name);
  }
  return "";
}

// ---- the worker's side ---------------------------------------------------------------------------

namespace {

// Runs the protocol on compiled binaries in a sandboxed child of the worker, and turns how the
// child ended into a status.
EvalResult run_sandboxed(const Task& task, const std::string& reference_binary, const std::string& baseline_binary,
                         const std::string& candidate_binary, const EvalOptions& options, std::uint64_t seed) {
  auto child = run_in_child(
      [&](int output_fd) {
        dup2(STDERR_FILENO, STDOUT_FILENO);  // the candidate's prints must not reach the worker's channel
        EvalResult r;
        r.seed = seed;
        // The sandbox comes first: loading a kernel runs its static constructors.
        Status sandbox = options.sandbox ? enter_sandbox(options) : Status{};
        watchdog.start();
        auto reference = SharedLibrary::open(reference_binary);
        std::optional<SharedLibrary> baseline;
        CallFn baseline_fn = nullptr;
        if (!baseline_binary.empty())
          if (auto lib = SharedLibrary::open(baseline_binary))
            if (auto fn = lib->symbol("kforge_call")) {
              baseline_fn = reinterpret_cast<CallFn>(*fn);
              baseline.emplace(std::move(*lib));
            }
        auto library = SharedLibrary::open(candidate_binary);
        auto ref_fn = reference ? reference->symbol("kforge_call") : Result<void*>(reference.error());
        auto cand_fn = library ? library->symbol("kforge_call") : Result<void*>(library.error());
        if (!ref_fn || !cand_fn || !sandbox) {
          r.status = EvalStatus::runtime_error;
          r.message = !sandbox ? sandbox.error().message : (!ref_fn ? ref_fn : cand_fn).error().message;
        } else {
          HostTarget target(reinterpret_cast<CallFn>(*cand_fn), baseline_fn, options.flush_cache);
          r = run_protocol(task, reinterpret_cast<CallFn>(*ref_fn), target, options, seed);
        }
        std::string text = to_json(r).dump();
        for (size_t done = 0; done < text.size();) {
          ssize_t n = write(output_fd, text.data() + done, text.size() - done);
          if (n <= 0) _exit(3);
          done += static_cast<size_t>(n);
        }
        // Leave now, before the libraries' destructors: dlclose would unmap libgomp under the
        // kernel's idle OpenMP threads, which then crash the process (SIGSEGV) on their way out.
        _exit(0);
      },
      options.timeout_s);

  EvalResult result;
  result.seed = seed;
  if (!child) {
    result.status = EvalStatus::runtime_error;
    result.message = child.error().message;
  } else if (child->timed_out) {
    result.status = EvalStatus::timeout;
    result.message = fmt::format("timeout after {:g} s", options.timeout_s);
  } else if (child->signal != 0) {
    result.status = EvalStatus::crash;
    result.message = "crash: " + signal_name(child->signal);
  } else if (child->exit_code == kWatchdogExit && child->output.empty()) {
    result.status = EvalStatus::timeout;
    result.message = kWatchdogMessage;
  } else if (child->exit_code != 0 || child->output.empty()) {
    result.status = EvalStatus::crash;
    result.message = fmt::format("crash: the kernel ended the process (exit code {})", child->exit_code);
  } else {
    auto parsed = nlohmann::json::parse(child->output, nullptr, false);
    auto decoded = parsed.is_discarded() ? Result<EvalResult>(make_error(ErrorKind::internal, "unreadable"))
                                         : eval_result_from_json(parsed);
    if (decoded && consistent(task, *decoded, options, seed)) return *decoded;
    // Only candidate code could have written this: the harness's own results are consistent.
    result.status = EvalStatus::runtime_error;
    result.message = "the evaluation process sent a malformed result (did the kernel write to its descriptors?)";
  }
  return result;
}

}  // namespace

namespace {

// A GPU evaluation, in the worker itself; the reference runs on the host beside it.
EvalResult evaluate_on_device(const Task& task, const nlohmann::json& request, const EvalOptions& options,
                              std::uint64_t seed) {
  EvalResult result;
  result.seed = seed;
  static std::map<std::string, SharedLibrary> references;  // loaded once per worker
  const std::string reference_path = request.at("reference");
  auto it = references.find(reference_path);
  if (it == references.end()) {
    auto library = SharedLibrary::open(reference_path);
    if (!library) {
      result.message = library.error().message;
      return result;
    }
    it = references.emplace(reference_path, std::move(*library)).first;
  }
  auto reference = it->second.symbol("kforge_call");
  auto target = reference ? make_device_target(request.at("backend"), request.value("device", 0), request.at("candidate"),
                                               request.value("baseline", nlohmann::json()),
                                               request.value("vendor_baseline", nlohmann::json()),
                                               request.value("copy_probe", nlohmann::json()))
                          : Result<std::unique_ptr<Target>>(reference.error());
  if (!target) {
    result.status = EvalStatus::runtime_error;
    result.message = target.error().message;
    return result;
  }
  // A GPU kernel that never ends blocks the worker in its synchronize: the watchdog ends the
  // worker, and the parent reads kWatchdogExit as a timeout.
  watchdog.start();
  result = run_protocol(task, reinterpret_cast<CallFn>(*reference), **target, options, seed);
  if (result.speedup > 0) result.baseline = (*target)->baseline_name();
  // The floor from the attributes (generous), the roofline from the measured bandwidth (honest).
  const double copy = (*target)->copy_bytes_per_s();
  if (result.status == EvalStatus::ok && (*target)->device())
    if (auto limits = device_limits(*(*target)->device(), copy))
      apply_physics(task, *limits, result, device_roofline(*limits, copy));
  // A sticky error leaves the context unusable: answer, then let the next evaluation start afresh.
  if ((*target)->dead()) exit_after_answer = true;
  return result;
}

}  // namespace

namespace {

// {"type": "validate", "task_dir", "reference"}: runs reference_problem in a sandboxed child;
// answers {"problem": "..."}, empty when the reference passed.
nlohmann::json validate_reference(const nlohmann::json& request) {
  try {
    auto task = load_task(request.at("task_dir").get<std::string>());
    if (!task) return {{"error", task.error().message}};
    const std::string reference_binary = request.at("reference");
    EvalOptions options;
    options.timeout_s = 60;
    auto child = run_in_child(
        [&](int output_fd) {
          dup2(STDERR_FILENO, STDOUT_FILENO);
          std::string problem;
          if (Status sandbox = enter_sandbox(options); !sandbox) {
            problem = "internal: " + sandbox.error().message;
          } else if (auto library = SharedLibrary::open(reference_binary); !library) {
            problem = "internal: " + library.error().message;
          } else if (auto fn = library->symbol("kforge_call"); !fn) {
            problem = "internal: " + fn.error().message;
          } else {
            problem = reference_problem(*task, reinterpret_cast<CallFn>(*fn));
            problem = problem.empty() ? "ok" : problem;
          }
          for (size_t done = 0; done < problem.size();) {
            ssize_t n = write(output_fd, problem.data() + done, problem.size() - done);
            if (n <= 0) _exit(3);
            done += static_cast<size_t>(n);
          }
          _exit(0);
        },
        options.timeout_s);
    if (!child) return {{"error", child.error().message}};
    if (child->timed_out) return {{"problem", "the reference ran past 60 s on the check shapes"}};
    if (child->signal != 0) return {{"problem", "the reference crashed on a check shape: " + signal_name(child->signal)}};
    if (child->exit_code != 0 || child->output.empty())
      return {{"problem", fmt::format("the reference ended the process (exit code {})", child->exit_code)}};
    if (child->output.rfind("internal: ", 0) == 0) return {{"error", child->output.substr(10)}};
    return {{"problem", child->output == "ok" ? "" : child->output}};
  } catch (const nlohmann::json::exception& e) {
    return {{"error", fmt::format("malformed validate request: {}", e.what())}};
  }
}

}  // namespace

nlohmann::json serve_request(const nlohmann::json& request) {
  const std::string type = request.value("type", "");
  if (type == "ping") return {{"pong", true}, {"pid", getpid()}};
  if (type == "validate") return validate_reference(request);
  if (type != "eval") return {{"error", fmt::format("unknown request type '{}'", type)}};
  try {
    // A worker serves the same few tasks over and over: load each once.
    static std::map<std::string, Task> tasks;
    const std::string dir = request.at("task_dir");
    auto it = tasks.find(dir);
    if (it == tasks.end()) {
      auto task = load_task(dir);
      if (!task) return {{"error", task.error().message}};
      it = tasks.emplace(dir, std::move(*task)).first;
    }
    const EvalOptions options = eval_options_from_json(request.at("options"));
    const std::uint64_t seed = request.at("seed");
    auto conventions = kernel_conventions(request.value("backend", "cpu"));
    if (!conventions) return {{"error", conventions.error().message}};
    if (!conventions->runs_on_host())
      return {{"result", to_json(evaluate_on_device(it->second, request, options, seed))}};
    EvalResult result = run_sandboxed(it->second, request.at("reference"), request.at("baseline"),
                                      request.at("candidate"), options, seed);
    // Here, outside the child that ran the candidate: what it reported is checked against physics.
    if (const std::string probe = request.value("probe", ""); !probe.empty() && result.status == EvalStatus::ok) {
      if (auto limits = probe_limits(probe)) {
        EvalResult checked = result;
        apply_physics(it->second, *limits, checked);
        // Before calling a kernel faster than physics, measure the machine again: the saved
        // numbers may come from a busy moment (they only ever grow).
        if (checked.status == EvalStatus::rejected_cheat)
          if (auto again = probe_limits(probe, true)) {
            checked = result;
            apply_physics(it->second, *again, checked);
          }
        result = std::move(checked);
      } else {
        fmt::print(stderr, "kforge worker: no physics floor: {}\n", limits.error().message);
      }
    }
    return {{"result", to_json(result)}};
  } catch (const nlohmann::json::exception& e) {
    return {{"error", fmt::format("malformed eval request: {}", e.what())}};
  }
}

}  // namespace kforge
