// LlamaDecoder: the forward pass over KernelLibrary kernels, on host or device buffers alike, and
// the kernel problems a model's runs resolve.
#include "inference/llama.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "inference/model_file.hpp"

namespace kforge {
namespace {

enum Op {
  kEmbedding,
  kRmsnorm,
  kAddRmsnorm,
  kRope,
  kGemv,
  kGemmFlat,
  kGemmPrefill,
  kKvAppend,
  kAttnDecode,
  kAttnPrefill,
  kSwiglu,
  kLmheadArgmax,
  kGemvQ8,
  kOpCount
};
constexpr std::array<const char*, kOpCount> kOpNames = {
    "llm/embedding", "llm/rmsnorm",     "llm/add_rmsnorm", "llm/rope",   "llm/gemv",          "llm/gemm_flat",
    "llm/gemm_prefill", "llm/kv_append", "llm/attn_decode", "llm/attn_prefill", "llm/swiglu", "llm/lmhead_argmax",
    "llm/gemv_q8_0"};

constexpr float kEps = 1e-5f;  // llama2.c's RMSNorm epsilon

// The matmul op for M tokens, and its dims for W [N, K]. Q8_0 weights: llm/gemv_q8_0, per token.
Op matmul_op(int m, bool q8 = false) {
  return q8 ? kGemvQ8 : m == 1 ? kGemv : m <= 64 ? kGemmFlat : kGemmPrefill;
}
Bindings matmul_dims(int m, int n, int k, bool q8 = false) {
  if (m == 1 || q8) return {{"N", n}, {"K", k}};
  return {{"M", m}, {"N", n}, {"K", k}};
}

std::string dims_label(const Bindings& dims) {
  std::string out;
  for (const auto& [name, value] : dims) out += fmt::format("{}{}={}", out.empty() ? "" : ",", name, value);
  return out;
}

void* arg(const void* p) {
  return const_cast<void*>(p);
}

// Where the decoder's buffers live: host memory on the cpu, the library's device on a GPU. Either
// way an address is a plain pointer (on a GPU a device address cast to one, never dereferenced
// here), which is what a kernel's call takes: so one forward pass serves both.
class Memory {
 public:
  explicit Memory(Device* device) : device_(device) {}
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  ~Memory() {
    for (DevicePtr p : device_buffers_) device_->free(p);
  }

  // `count` zeroed elements of T.
  template <class T>
  Result<T*> alloc(std::size_t count) {
    const std::size_t bytes = std::max<std::size_t>(64, (count * sizeof(T) + 63) / 64 * 64);
    if (!device_) {
      void* p = std::aligned_alloc(64, bytes);
      if (!p) return make_error(ErrorKind::internal, "out of memory: {} bytes of activations", bytes);
      std::memset(p, 0, bytes);
      host_buffers_.emplace_back(p);
      return static_cast<T*>(p);
    }
    auto p = device_->alloc(bytes);
    if (!p) return p.error();
    device_buffers_.push_back(*p);
    if (Status s = device_->fill(*p, 0, bytes); !s) return s.error();
    return reinterpret_cast<T*>(*p);
  }
  // `count` elements of T at `host`, where the kernels read them: `host` itself on the cpu (the
  // weights stay mapped), a copy on the device (uploaded once).
  template <class T>
  Result<const T*> upload(const T* host, std::size_t count) {
    if (!device_) return host;
    auto p = alloc<T>(count);
    if (!p) return p.error();
    if (Status s = copy_in(*p, host, count * sizeof(T)); !s) return s.error();
    return static_cast<const T*>(*p);
  }
  // Host to the buffers, and back; after the kernels enqueued before, on a GPU.
  Status copy_in(void* dst, const void* src, std::size_t bytes) {
    if (!device_) return std::memcpy(dst, src, bytes), Status{};
    return device_->copy_in(reinterpret_cast<DevicePtr>(dst), src, bytes);
  }
  Status copy_out(void* dst, const void* src, std::size_t bytes) {
    if (!device_) return std::memcpy(dst, src, bytes), Status{};
    return device_->copy_out(dst, reinterpret_cast<DevicePtr>(src), bytes);
  }
  bool on_device() const { return device_ != nullptr; }

 private:
  struct FreeHost {
    void operator()(void* p) const { std::free(p); }
  };
  Device* device_;
  std::vector<std::unique_ptr<void, FreeHost>> host_buffers_;
  std::vector<DevicePtr> device_buffers_;
};

}  // namespace

struct LlamaDecoder::Impl {
  explicit Impl(KernelLibrary& lib) : library(&lib), memory(lib.device()) {}

  KernelLibrary* library;
  Memory memory;  // everything below that kernels read or write lives there
  LlamaRunOptions options;
  LlamaConfig c;
  LlamaWeights w;                       // the model's, or their device copies
  std::optional<LlamaQ8Weights> q8;     // the same, with q8_0 projections
  int pos = 0;

  struct Matmul {
    Op op;
    std::optional<Kernel> kernel;
  };
  // The kernels of a forward pass over M tokens.
  struct Step {
    std::optional<Kernel> embedding;
    std::optional<Kernel> rmsnorm, add_rmsnorm, rope, swiglu, attn_prefill;
    Matmul q, kv, up, down;  // wq / wo (dim x dim), wk / wv (kv_dim x dim), w1 / w3, w2
  };
  std::map<int, Step> steps;                   // by M
  std::vector<std::optional<Kernel>> kv_append;  // by position
  std::vector<std::optional<Kernel>> attn_decode;  // by position (L = position + 1)
  std::optional<Kernel> classifier, argmax;

  // Activations for up to max_chunk tokens, in `memory`.
  float *x = nullptr, *xb = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *tmp = nullptr,
        *h1 = nullptr, *h3 = nullptr, *hb = nullptr, *logits = nullptr;
  float *key_cache = nullptr, *value_cache = nullptr;  // [layer][seq_len + 1][kv_dim], row 0 unused
  int *ids = nullptr, *positions = nullptr, *token = nullptr;
  std::vector<float> host_logits;  // what forward() returns
  std::vector<int> host_positions;
  int last_row = 0;  // row of xb holding the last token's final normed state

  std::array<double, kOpCount> seconds{};
  std::array<std::int64_t, kOpCount> calls{};
  std::vector<std::string> resolved;

  Result<Kernel> resolve(Op op, const Bindings& dims) {
    auto kernel = library->resolve(kOpNames[op], dims);
    if (!kernel) return kernel.error();
    std::string line = fmt::format("{} {}: {}", kOpNames[op], dims_label(dims), kernel->info().explanation);
    if (std::find(resolved.begin(), resolved.end(), line) == resolved.end()) resolved.push_back(std::move(line));
    return *kernel;
  }
  Result<Matmul> matmul(int m, int n, int k) {
    const bool quantized = q8.has_value();
    auto kernel = resolve(matmul_op(m, quantized), matmul_dims(m, n, k, quantized));
    if (!kernel) return kernel.error();
    return Matmul{matmul_op(m, quantized), *kernel};
  }
  // Layer l's matrix [n, k] of a stacked projection, in the model's format.
  const void* matrix(const float* f32, const std::uint8_t* quantized, std::int64_t l, std::int64_t n,
                     std::int64_t k) const {
    if (q8) return quantized + l * n * (k / 32) * 34;
    return f32 + l * n * k;
  }
  Result<Step*> step(int m);
  Result<Kernel> per_position(std::vector<std::optional<Kernel>>& cache, Op op, int position);

  // On a GPU the kernel is enqueued; profiling waits for it, so its time is the kernel's.
  void call(Op op, const Kernel& kernel, std::initializer_list<void*> args) {
    if (!options.profile) return kernel(args);
    const auto start = std::chrono::steady_clock::now();
    kernel(args);
    if (memory.on_device()) (void)library->synchronize();  // an error stays for the pass's own check
    seconds[op] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++calls[op];
  }
  // C [m, n] = A [m, k] W^T, with W [n, k]: gemv's and the gemms' argument orders differ.
  void run_matmul(const Matmul& mm, const void* weights, const float* a, float* out, int m, int n, int k) {
    if (mm.op == kGemv) return call(kGemv, *mm.kernel, {arg(weights), arg(a), out, &n, &k});
    if (mm.op == kGemvQ8) {
      for (int i = 0; i < m; ++i)
        call(kGemvQ8, *mm.kernel,
             {arg(weights), arg(a + static_cast<std::int64_t>(i) * k), out + static_cast<std::int64_t>(i) * n, &n, &k});
      return;
    }
    call(mm.op, *mm.kernel, {arg(a), arg(weights), out, &m, &n, &k});
  }
  Status chunk(std::span<const int> tokens);
  Status allocate(const LlamaModel& model);
  Status prompt(std::span<const int> tokens);
};

Result<LlamaDecoder::Impl::Step*> LlamaDecoder::Impl::step(int m) {
  if (auto it = steps.find(m); it != steps.end()) return &it->second;
  Step s;
  auto take = [](Result<Kernel> r, std::optional<Kernel>& into) -> Status {
    if (!r) return r.error();
    into = *r;
    return {};
  };
  auto take_mm = [](Result<Matmul> r, Matmul& into) -> Status {
    if (!r) return r.error();
    into = *r;
    return {};
  };
  const std::int64_t mm = m;
  if (Status st = take(resolve(kEmbedding, {{"M", mm}, {"V", c.vocab_size}, {"D", c.dim}}), s.embedding); !st)
    return st.error();
  for (Status st : {take(resolve(kRmsnorm, {{"M", mm}, {"N", c.dim}}), s.rmsnorm),
                    take(resolve(kAddRmsnorm, {{"M", mm}, {"N", c.dim}}), s.add_rmsnorm),
                    take(resolve(kRope, {{"M", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}),
                         s.rope),
                    take(resolve(kSwiglu, {{"M", mm}, {"N", c.hidden_dim}}), s.swiglu),
                    take_mm(matmul(m, c.dim, c.dim), s.q), take_mm(matmul(m, c.kv_dim(), c.dim), s.kv),
                    take_mm(matmul(m, c.hidden_dim, c.dim), s.up), take_mm(matmul(m, c.dim, c.hidden_dim), s.down)})
    if (!st) return st.error();
  if (m > 1)
    if (Status st = take(resolve(kAttnPrefill, {{"S", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}),
                         s.attn_prefill);
        !st)
      return st.error();
  return &steps.emplace(m, std::move(s)).first->second;
}

Result<Kernel> LlamaDecoder::Impl::per_position(std::vector<std::optional<Kernel>>& cache, Op op, int position) {
  auto& slot = cache[static_cast<std::size_t>(position)];
  if (slot) return *slot;
  const Bindings dims = op == kKvAppend ? Bindings{{"L", c.seq_len + 1}, {"KVH", c.n_kv_heads}, {"D", c.head_size()},
                                                   {"pos", position + 1}}
                                        : Bindings{{"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"L", position + 1},
                                                   {"D", c.head_size()}};
  auto kernel = resolve(op, dims);
  if (!kernel) return kernel.error();
  slot = *kernel;
  return *kernel;
}

Status LlamaDecoder::Impl::chunk(std::span<const int> tokens) {
  const int m = static_cast<int>(tokens.size());
  if (pos + m > c.seq_len)
    return make_error(ErrorKind::invalid_input, "position {} is past the model's context (seq_len {})", pos + m - 1,
                      c.seq_len);
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      return make_error(ErrorKind::invalid_input, "token {} is outside the vocabulary (0..{})", t, c.vocab_size - 1);
  auto s = step(m);
  if (!s) return s.error();
  const Step& st = **s;
  // Kernels take the address of every size: non-const copies.
  int m_arg = m, dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, heads = c.n_heads, kv_heads = c.n_kv_heads,
      head = c.head_size(), vocab = c.vocab_size, cap = c.seq_len + 1;
  float eps = kEps, theta = options.rope_theta, scale = 1 / std::sqrt(static_cast<float>(head));

  for (int i = 0; i < m; ++i) host_positions[static_cast<std::size_t>(i)] = pos + i;
  if (Status copied = memory.copy_in(ids, tokens.data(), sizeof(int) * tokens.size()); !copied) return copied;
  if (Status copied = memory.copy_in(positions, host_positions.data(), sizeof(int) * tokens.size()); !copied)
    return copied;

  call(kEmbedding, *st.embedding, {arg(w.token_embedding), ids, x, &m_arg, &vocab, &dim});
  call(kRmsnorm, *st.rmsnorm, {x, arg(w.rms_att), xb, &m_arg, &dim, &eps});

  for (int l = 0; l < c.n_layers; ++l) {
    const std::int64_t ll = l;
    const LlamaQ8Weights none{};
    const LlamaQ8Weights& qw = q8 ? *q8 : none;
    run_matmul(st.q, matrix(w.wq, qw.wq, ll, dim, dim), xb, q, m, dim, dim);
    run_matmul(st.kv, matrix(w.wk, qw.wk, ll, kv_dim, dim), xb, k, m, kv_dim, dim);
    run_matmul(st.kv, matrix(w.wv, qw.wv, ll, kv_dim, dim), xb, v, m, kv_dim, dim);
    call(kRope, *st.rope, {q, k, positions, &m_arg, &heads, &kv_heads, &head, &theta});

    float* kc = key_cache + ll * cap * kv_dim;
    float* vc = value_cache + ll * cap * kv_dim;
    for (int i = 0; i < m; ++i) {
      auto append = per_position(kv_append, kKvAppend, pos + i);
      if (!append) return append.error();
      int row = pos + i + 1;
      call(kKvAppend, *append,
           {k + static_cast<std::int64_t>(i) * kv_dim, v + static_cast<std::int64_t>(i) * kv_dim, kc, vc,
            &cap, &kv_heads, &head, &row});
    }
    if (pos == 0 && m > 1) {  // the chunk is the whole context: causal attention within it
      call(kAttnPrefill, *st.attn_prefill,
           {q, kc + kv_dim, vc + kv_dim, att, &m_arg, &heads, &kv_heads, &head, &scale});
    } else {
      for (int i = 0; i < m; ++i) {
        auto attend = per_position(attn_decode, kAttnDecode, pos + i);
        if (!attend) return attend.error();
        int length = pos + i + 1;
        call(kAttnDecode, *attend,
             {q + static_cast<std::int64_t>(i) * dim, kc + kv_dim, vc + kv_dim,
              att + static_cast<std::int64_t>(i) * dim, &heads, &kv_heads, &length, &head, &scale});
      }
    }
    run_matmul(st.q, matrix(w.wo, qw.wo, ll, dim, dim), att, tmp, m, dim, dim);
    call(kAddRmsnorm, *st.add_rmsnorm, {tmp, x, arg(w.rms_ffn + ll * dim), xb, &m_arg, &dim, &eps});

    run_matmul(st.up, matrix(w.w1, qw.w1, ll, hidden, dim), xb, h1, m, hidden, dim);
    run_matmul(st.up, matrix(w.w3, qw.w3, ll, hidden, dim), xb, h3, m, hidden, dim);
    call(kSwiglu, *st.swiglu, {h1, h3, hb, &m_arg, &hidden});
    run_matmul(st.down, matrix(w.w2, qw.w2, ll, dim, hidden), hb, tmp, m, dim, hidden);
    // The residual add fused with the next norm: the next layer's attention norm, or the final one.
    const float* next_norm = l + 1 < c.n_layers ? w.rms_att + (ll + 1) * dim : w.rms_final;
    call(kAddRmsnorm, *st.add_rmsnorm, {tmp, x, arg(next_norm), xb, &m_arg, &dim, &eps});
  }
  pos += m;
  last_row = m - 1;
  return {};
}

// The weights where the kernels read them (uploaded once on a GPU), the activations and the KV cache.
Status LlamaDecoder::Impl::allocate(const LlamaModel& model) {
  const std::size_t m = static_cast<std::size_t>(options.max_chunk), d = static_cast<std::size_t>(c.dim),
                    kv = static_cast<std::size_t>(c.kv_dim()), h = static_cast<std::size_t>(c.hidden_dim),
                    l = static_cast<std::size_t>(c.n_layers), vocab = static_cast<std::size_t>(c.vocab_size);
  Status status;
  auto take = [&](auto result, auto& into) {
    if (!status) return;
    if (result) into = *result;
    else status = result.error();
  };
  const LlamaWeights& file = model.weights();
  take(memory.upload(file.token_embedding, vocab * d), w.token_embedding);
  take(memory.upload(file.rms_att, l * d), w.rms_att);
  take(memory.upload(file.rms_ffn, l * d), w.rms_ffn);
  take(memory.upload(file.rms_final, d), w.rms_final);
  if (c.shared_classifier) w.wcls = w.token_embedding;
  else take(memory.upload(file.wcls, vocab * d), w.wcls);
  if (const LlamaQ8Weights* quantized = model.q8_weights()) {
    LlamaQ8Weights on;
    take(memory.upload(quantized->wq, q8_0_bytes(l * d, d)), on.wq);
    take(memory.upload(quantized->wk, q8_0_bytes(l * kv, d)), on.wk);
    take(memory.upload(quantized->wv, q8_0_bytes(l * kv, d)), on.wv);
    take(memory.upload(quantized->wo, q8_0_bytes(l * d, d)), on.wo);
    take(memory.upload(quantized->w1, q8_0_bytes(l * h, d)), on.w1);
    take(memory.upload(quantized->w2, q8_0_bytes(l * d, h)), on.w2);
    take(memory.upload(quantized->w3, q8_0_bytes(l * h, d)), on.w3);
    q8 = on;
  } else {
    take(memory.upload(file.wq, l * d * d), w.wq);
    take(memory.upload(file.wk, l * kv * d), w.wk);
    take(memory.upload(file.wv, l * kv * d), w.wv);
    take(memory.upload(file.wo, l * d * d), w.wo);
    take(memory.upload(file.w1, l * h * d), w.w1);
    take(memory.upload(file.w2, l * d * h), w.w2);
    take(memory.upload(file.w3, l * h * d), w.w3);
  }
  for (float** buffer : {&x, &xb, &q, &att, &tmp}) take(memory.alloc<float>(m * d), *buffer);
  for (float** buffer : {&k, &v}) take(memory.alloc<float>(m * kv), *buffer);
  for (float** buffer : {&h1, &h3, &hb}) take(memory.alloc<float>(m * h), *buffer);
  take(memory.alloc<float>(vocab), logits);
  const std::size_t cache = l * (static_cast<std::size_t>(c.seq_len) + 1) * kv;
  take(memory.alloc<float>(cache), key_cache);
  take(memory.alloc<float>(cache), value_cache);
  take(memory.alloc<int>(m), ids);
  take(memory.alloc<int>(m), positions);
  take(memory.alloc<int>(1), token);
  host_logits.resize(vocab);
  host_positions.resize(m);
  return status;
}

Result<LlamaDecoder> LlamaDecoder::create(const LlamaModel& model, KernelLibrary& library, LlamaRunOptions options) {
  if (options.max_chunk < 1)
    return make_error(ErrorKind::invalid_input, "max_chunk {}: expected at least 1 token", options.max_chunk);
  auto impl = std::make_unique<Impl>(library);
  impl->c = model.config();
  impl->options = options;
  impl->options.max_chunk = std::min(options.max_chunk, impl->c.seq_len);
  if (Status s = impl->allocate(model); !s) return s.error();
  impl->kv_append.resize(static_cast<std::size_t>(impl->c.seq_len));
  impl->attn_decode.resize(static_cast<std::size_t>(impl->c.seq_len));
  const LlamaConfig& c = impl->c;

  // The decode step's kernels, and the first position's, up front: a dim no kernel is defined at
  // fails here rather than mid-generation.
  if (auto s = impl->step(1); !s) return s.error();
  if (auto k = impl->per_position(impl->kv_append, kKvAppend, 0); !k) return k.error();
  if (auto k = impl->per_position(impl->attn_decode, kAttnDecode, 0); !k) return k.error();
  auto classifier = impl->resolve(kGemv, matmul_dims(1, c.vocab_size, c.dim));
  if (!classifier) return classifier.error();
  impl->classifier = *classifier;
  auto argmax = impl->resolve(kLmheadArgmax, {{"V", c.vocab_size}, {"K", c.dim}});
  if (!argmax) return argmax.error();
  impl->argmax = *argmax;
  return LlamaDecoder(std::move(impl));
}

// Runs `tokens` in chunks of max_chunk.
Status LlamaDecoder::Impl::prompt(std::span<const int> tokens) {
  if (tokens.empty()) return make_error(ErrorKind::invalid_input, "forward: no tokens");
  const auto chunk_size = static_cast<std::size_t>(options.max_chunk);
  for (std::size_t i = 0; i < tokens.size(); i += chunk_size)
    if (Status s = chunk(tokens.subspan(i, std::min(tokens.size() - i, chunk_size))); !s) return s;
  return {};
}

Result<std::span<const float>> LlamaDecoder::forward(std::span<const int> tokens) {
  auto& s = *impl_;
  if (Status st = s.prompt(tokens); !st) return st.error();
  int vocab = s.c.vocab_size, dim = s.c.dim;
  s.call(kGemv, *s.classifier,
         {arg(s.w.wcls), s.xb + static_cast<std::int64_t>(s.last_row) * dim, s.logits, &vocab, &dim});
  if (Status st = s.library->synchronize(); !st) return st.error();
  if (Status st = s.memory.copy_out(s.host_logits.data(), s.logits, sizeof(float) * s.host_logits.size()); !st)
    return st.error();
  return std::span<const float>(s.host_logits);
}

Result<int> LlamaDecoder::forward_greedy(std::span<const int> tokens) {
  auto& s = *impl_;
  if (Status st = s.prompt(tokens); !st) return st.error();
  int vocab = s.c.vocab_size, dim = s.c.dim, token = 0;
  s.call(kLmheadArgmax, *s.argmax,
         {arg(s.w.wcls), s.xb + static_cast<std::int64_t>(s.last_row) * dim, s.token, &vocab, &dim});
  if (Status st = s.library->synchronize(); !st) return st.error();
  if (Status st = s.memory.copy_out(&token, s.token, sizeof token); !st) return st.error();
  return token;
}

void LlamaDecoder::reset() {
  impl_->pos = 0;
}
int LlamaDecoder::position() const {
  return impl_->pos;
}

std::vector<LlamaDecoder::OpTime> LlamaDecoder::op_times() const {
  std::vector<OpTime> out;
  for (int op = 0; op < kOpCount; ++op)
    if (impl_->calls[static_cast<std::size_t>(op)] > 0)
      out.push_back({kOpNames[static_cast<std::size_t>(op)], impl_->seconds[static_cast<std::size_t>(op)],
                     impl_->calls[static_cast<std::size_t>(op)]});
  return out;
}

std::vector<std::string> LlamaDecoder::explain() const {
  return impl_->resolved;
}

std::vector<LlamaProblem> LlamaDecoder::problems(const LlamaConfig& c, const LlamaRunOptions& options,
                                                 LlamaWeightFormat format) {
  const bool q8 = format == LlamaWeightFormat::q8_0;
  std::vector<LlamaProblem> out;
  std::set<std::string> seen;
  auto add = [&](Op op, Bindings dims, std::string why) {
    const std::string key = fmt::format("{} {}", kOpNames[op], dims_label(dims));
    if (!seen.insert(key).second) {
      for (auto& p : out)
        if (p.op == kOpNames[op] && p.dims == dims) p.why += ", " + why;
      return;
    }
    out.push_back({kOpNames[op], std::move(dims), std::move(why)});
  };
  const int chunk = std::min(std::max(options.max_chunk, 1), c.seq_len);
  std::vector<int> token_counts = {1};
  if (chunk > 1) token_counts.push_back(chunk);
  for (int m : token_counts) {
    const std::string when = m == 1 ? "decode" : fmt::format("prompt chunk of {}", m);
    const std::int64_t mm = m;
    add(kEmbedding, {{"M", mm}, {"V", c.vocab_size}, {"D", c.dim}}, when);
    add(kRmsnorm, {{"M", mm}, {"N", c.dim}}, when + " first norm");
    add(kAddRmsnorm, {{"M", mm}, {"N", c.dim}}, when + " residual + norm");
    add(kRope, {{"M", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}, when);
    add(matmul_op(m, q8), matmul_dims(m, c.dim, c.dim, q8), when + " wq/wo");
    add(matmul_op(m, q8), matmul_dims(m, c.kv_dim(), c.dim, q8), when + " wk/wv");
    add(matmul_op(m, q8), matmul_dims(m, c.hidden_dim, c.dim, q8), when + " w1/w3");
    add(matmul_op(m, q8), matmul_dims(m, c.dim, c.hidden_dim, q8), when + " w2");
    add(kSwiglu, {{"M", mm}, {"N", c.hidden_dim}}, when);
    if (m > 1) add(kAttnPrefill, {{"S", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}, when);
  }
  add(kKvAppend, {{"L", c.seq_len + 1}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}, {"pos", c.seq_len}},
      fmt::format("one per position pos = 1..{}", c.seq_len));
  add(kAttnDecode, {{"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"L", c.seq_len}, {"D", c.head_size()}},
      fmt::format("one per context length L = 1..{}", c.seq_len));
  add(kGemv, matmul_dims(1, c.vocab_size, c.dim), "classifier logits");
  add(kLmheadArgmax, {{"V", c.vocab_size}, {"K", c.dim}}, "greedy classifier");
  return out;
}

LlamaDecoder::LlamaDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaDecoder::LlamaDecoder(LlamaDecoder&&) noexcept = default;
LlamaDecoder& LlamaDecoder::operator=(LlamaDecoder&&) noexcept = default;
LlamaDecoder::~LlamaDecoder() = default;

}  // namespace kforge
