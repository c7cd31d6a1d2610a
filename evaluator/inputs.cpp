// What every call of a kernel under test runs on. make_inputs draws a call's arguments from the
// task's distributions (seeded, varied from one correctness trial to the next), candidate_args
// gives the candidate its own copy with its outputs poisoned, timing_pool builds the input sets
// the timed calls cycle through, and redraw_some draws a few elements of a set afresh before each
// timed call, so that no stored answer is ever right. held_out_shape draws the shape the candidate
// is checked on without ever having been shown it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

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

}  // namespace

std::int64_t element_count(const TaskArg& arg, const Bindings& dims) {
  std::int64_t count = 1;
  for (const auto& d : arg.shape) count *= d.eval(dims).value();  // validated by the loader
  return count;
}

// Elements in a buffer of `arg`'s dtype.
size_t buffer_elements(const Buffer& buffer, DType dtype) {
  return buffer.bytes / block_bytes(dtype) * block_elements(dtype);
}

bool is_output(const TaskArg& arg) {
  return arg.role == ArgRole::out || arg.role == ArgRole::inout;
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

}  // namespace kforge
