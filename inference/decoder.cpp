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
  kGemvSwiglu,
  kGemvQ8Q8,
  kGemmQ8Q8,
  kArgmax,
  kOpCount
};
constexpr std::array<const char*, kOpCount> kOpNames = {
    "llm/embedding",   "llm/rmsnorm",     "llm/add_rmsnorm",  "llm/rope",         "llm/gemv",
    "llm/gemm_flat",   "llm/gemm_prefill", "llm/kv_append",   "llm/attn_decode",  "llm/attn_prefill",
    "llm/swiglu",      "llm/lmhead_argmax", "llm/gemv_q8_0",  "llm/gemv_swiglu",  "llm/gemv_q8_0_q8",
    "llm/gemm_q8_0_q8", "llm/argmax"};

constexpr float kEps = 1e-5f;  // llama2.c's RMSNorm epsilon

bool per_token(Op op) {
  return op == kGemv || op == kGemvQ8 || op == kGemvQ8Q8;
}

// The ops that can compute C [M, N] = A [M, K] W^T, the preferred first: the decoder takes the
// first the library has a tuned kernel for, else the last (its baseline at worst). With Q8_0
// weights: the integer-dot ops (the activations quantized as ggml does), then llm/gemv_q8_0.
std::vector<Op> matmul_ops(int m, bool q8) {
  if (q8) return m > 1 ? std::vector<Op>{kGemmQ8Q8, kGemvQ8Q8, kGemvQ8} : std::vector<Op>{kGemvQ8Q8, kGemvQ8};
  return {m == 1 ? kGemv : m <= 64 ? kGemmFlat : kGemmPrefill};
}
Bindings matmul_dims(Op op, int m, int n, int k) {
  if (per_token(op)) return {{"N", n}, {"K", k}};
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
  LlamaWeights w;  // the embedding and the norms (f32), or their device copies
  bool q8 = false;
  // The projections and the classifier, f32 or Q8_0 ([L, N, K] stacked; wqkv: wq, wk, wv rows).
  const void *wqkv = nullptr, *wo = nullptr, *w1 = nullptr, *w2 = nullptr, *w3 = nullptr, *wcls = nullptr;
  int pos = 0;

  struct Matmul {
    Op op = kGemv;
    std::optional<Kernel> kernel;
  };
  // The kernels of a forward pass over M tokens.
  struct Step {
    std::optional<Kernel> embedding;
    std::optional<Kernel> rmsnorm, add_rmsnorm, rope, swiglu, attn_prefill;
    Matmul qkv;           // M = 1: wq, wk, wv stacked, one call
    Matmul q, kv;         // M > 1: wq; wk and wv
    Matmul o, up, down;   // wo (dim x dim), w1 / w3, w2
    std::optional<Kernel> gate_up;  // M = 1, f32: w1, w3 and swiglu as one llm/gemv_swiglu, where tuned
  };
  std::map<int, Step> steps;                   // by M
  std::vector<std::optional<Kernel>> kv_append;  // by position
  std::vector<std::optional<Kernel>> attn_decode;  // by position (L = position + 1)
  Matmul classifier;
  std::optional<Kernel> argmax;  // llm/lmhead_argmax (f32), llm/argmax over the logits (q8_0)

  // Activations for up to max_chunk tokens, in `memory`.
  // q holds a chunk's q [M, dim], then its k [M, kv_dim] and v [M, kv_dim]: for M = 1, what the
  // stacked projection writes in one call.
  float *x = nullptr, *xb = nullptr, *q = nullptr, *att = nullptr, *tmp = nullptr,
        *h1 = nullptr, *h3 = nullptr, *hb = nullptr, *logits = nullptr;
  float *key_cache = nullptr, *value_cache = nullptr;  // [layer][seq_len + 1][kv_dim], row 0 unused
  int *ids = nullptr, *positions = nullptr, *token = nullptr;
  std::vector<float> host_logits;  // what forward() returns
  std::vector<int> host_positions;
  int last_row = 0;  // row of xb holding the last token's final normed state

  std::array<double, kOpCount> seconds{};
  std::array<std::int64_t, kOpCount> calls{};
  std::vector<std::string> resolved;

  void note(Op op, const Bindings& dims, const Kernel& kernel) {
    std::string line = fmt::format("{} {}: {}", kOpNames[op], dims_label(dims), kernel.info().explanation);
    if (std::find(resolved.begin(), resolved.end(), line) == resolved.end()) resolved.push_back(std::move(line));
  }
  Result<Kernel> resolve(Op op, const Bindings& dims) {
    auto kernel = library->resolve(kOpNames[op], dims);
    if (!kernel) return kernel.error();
    note(op, dims, *kernel);
    return *kernel;
  }
  // The library's tuned kernel for the problem, else nothing (a tasks folder without the op counts
  // as untuned). Either way the problem was asked for, so a miss is counted for the next search.
  std::optional<Kernel> tuned(Op op, const Bindings& dims) {
    auto kernel = library->resolve(kOpNames[op], dims);
    if (!kernel || kernel->info().match == KernelMatch::baseline) return std::nullopt;
    note(op, dims, *kernel);
    return *kernel;
  }
  Result<Matmul> matmul(int m, int n, int k) {
    const std::vector<Op> ops = matmul_ops(m, q8);
    for (std::size_t i = 0; i + 1 < ops.size(); ++i)
      if (auto kernel = tuned(ops[i], matmul_dims(ops[i], m, n, k))) return Matmul{ops[i], *kernel};
    auto kernel = resolve(ops.back(), matmul_dims(ops.back(), m, n, k));
    if (!kernel) return kernel.error();
    return Matmul{ops.back(), *kernel};
  }
  std::int64_t row_bytes(std::int64_t k) const {
    return q8 ? static_cast<std::int64_t>(q8_0_bytes(1, static_cast<std::size_t>(k))) : 4 * k;
  }
  // Layer l's matrix of a stacked projection [L, n, k], from its row `row` on.
  const void* matrix(const void* stacked, std::int64_t l, std::int64_t n, std::int64_t k, std::int64_t row = 0) const {
    return static_cast<const std::uint8_t*>(stacked) + (l * n + row) * row_bytes(k);
  }
  Result<Step*> step(int m);
  Result<Kernel> per_position(std::vector<std::optional<Kernel>>& cache, Op op, int position);

  // On a GPU the kernel is enqueued; profiling waits for it, so its time is the kernel's.
  void call(Op op, const Kernel& kernel, std::initializer_list<void*> args) {
    ++calls[op];
    if (!options.profile) return kernel(args);
    const auto start = std::chrono::steady_clock::now();
    kernel(args);
    if (memory.on_device()) (void)library->synchronize();  // an error stays for the pass's own check
    seconds[op] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // C [m, n] = A [m, k] W^T, with W [n, k]: gemv's and the gemms' argument orders differ.
  void run_matmul(const Matmul& mm, const void* weights, const float* a, float* out, int m, int n, int k) {
    if (per_token(mm.op)) {
      for (int i = 0; i < m; ++i)
        call(mm.op, *mm.kernel,
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
  const int kv = c.kv_dim();
  if (Status st = take(resolve(kEmbedding, {{"M", mm}, {"V", c.vocab_size}, {"D", c.dim}}), s.embedding); !st)
    return st.error();
  for (Status st : {take(resolve(kRmsnorm, {{"M", mm}, {"N", c.dim}}), s.rmsnorm),
                    take(resolve(kAddRmsnorm, {{"M", mm}, {"N", c.dim}}), s.add_rmsnorm),
                    take(resolve(kRope, {{"M", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}),
                         s.rope),
                    take_mm(matmul(m, c.dim, c.dim), s.o), take_mm(matmul(m, c.dim, c.hidden_dim), s.down)})
    if (!st) return st.error();
  if (m == 1) {
    if (Status st = take_mm(matmul(1, c.dim + 2 * kv, c.dim), s.qkv); !st) return st.error();
    if (!q8) s.gate_up = tuned(kGemvSwiglu, {{"N", c.hidden_dim}, {"K", c.dim}});
  } else {
    s.q = s.o;
    if (Status st = take_mm(matmul(m, kv, c.dim), s.kv); !st) return st.error();
    if (Status st = take(resolve(kAttnPrefill, {{"S", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}),
                         s.attn_prefill);
        !st)
      return st.error();
  }
  if (!s.gate_up)
    for (Status st : {take_mm(matmul(m, c.hidden_dim, c.dim), s.up), take(resolve(kSwiglu, {{"M", mm}, {"N", c.hidden_dim}}), s.swiglu)})
      if (!st) return st.error();
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
  float* k = q + static_cast<std::int64_t>(m) * dim;
  float* v = k + static_cast<std::int64_t>(m) * kv_dim;

  for (int i = 0; i < m; ++i) host_positions[static_cast<std::size_t>(i)] = pos + i;
  if (Status copied = memory.copy_in(ids, tokens.data(), sizeof(int) * tokens.size()); !copied) return copied;
  if (Status copied = memory.copy_in(positions, host_positions.data(), sizeof(int) * tokens.size()); !copied)
    return copied;

  call(kEmbedding, *st.embedding, {arg(w.token_embedding), ids, x, &m_arg, &vocab, &dim});
  call(kRmsnorm, *st.rmsnorm, {x, arg(w.rms_att), xb, &m_arg, &dim, &eps});

  for (int l = 0; l < c.n_layers; ++l) {
    const std::int64_t ll = l, qkv_rows = dim + 2 * kv_dim;
    if (m == 1) {  // q, k, v are consecutive: one gemv writes all three
      run_matmul(st.qkv, matrix(wqkv, ll, qkv_rows, dim), xb, q, 1, static_cast<int>(qkv_rows), dim);
    } else {
      run_matmul(st.q, matrix(wqkv, ll, qkv_rows, dim), xb, q, m, dim, dim);
      run_matmul(st.kv, matrix(wqkv, ll, qkv_rows, dim, dim), xb, k, m, kv_dim, dim);
      run_matmul(st.kv, matrix(wqkv, ll, qkv_rows, dim, dim + kv_dim), xb, v, m, kv_dim, dim);
    }
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
    run_matmul(st.o, matrix(wo, ll, dim, dim), att, tmp, m, dim, dim);
    call(kAddRmsnorm, *st.add_rmsnorm, {tmp, x, arg(w.rms_ffn + ll * dim), xb, &m_arg, &dim, &eps});

    if (st.gate_up) {
      call(kGemvSwiglu, *st.gate_up,
           {arg(matrix(w1, ll, hidden, dim)), arg(matrix(w3, ll, hidden, dim)), xb, hb, &hidden, &dim});
    } else {
      run_matmul(st.up, matrix(w1, ll, hidden, dim), xb, h1, m, hidden, dim);
      run_matmul(st.up, matrix(w3, ll, hidden, dim), xb, h3, m, hidden, dim);
      call(kSwiglu, *st.swiglu, {h1, h3, hb, &m_arg, &hidden});
    }
    run_matmul(st.down, matrix(w2, ll, dim, hidden), hb, tmp, m, dim, hidden);
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
  const std::size_t qkv_rows = l * (d + 2 * kv);
  if (const LlamaQ8Weights* quantized = model.q8_weights()) {
    q8 = true;
    take(memory.upload(quantized->wqkv, q8_0_bytes(qkv_rows, d)), wqkv);
    take(memory.upload(quantized->wo, q8_0_bytes(l * d, d)), wo);
    take(memory.upload(quantized->w1, q8_0_bytes(l * h, d)), w1);
    take(memory.upload(quantized->w2, q8_0_bytes(l * d, h)), w2);
    take(memory.upload(quantized->w3, q8_0_bytes(l * h, d)), w3);
    take(memory.upload(quantized->wcls, q8_0_bytes(vocab, d)), wcls);
  } else {
    take(memory.upload(file.wqkv, qkv_rows * d), wqkv);
    take(memory.upload(file.wo, l * d * d), wo);
    take(memory.upload(file.w1, l * h * d), w1);
    take(memory.upload(file.w2, l * d * h), w2);
    take(memory.upload(file.w3, l * h * d), w3);
    if (c.shared_classifier) wcls = w.token_embedding;
    else take(memory.upload(file.wcls, vocab * d), wcls);
  }
  take(memory.alloc<float>(m * (d + 2 * kv)), q);
  for (float** buffer : {&x, &xb, &att, &tmp}) take(memory.alloc<float>(m * d), *buffer);
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
  auto classifier = impl->matmul(1, c.vocab_size, c.dim);
  if (!classifier) return classifier.error();
  impl->classifier = *classifier;
  auto argmax = impl->q8 ? impl->resolve(kArgmax, {{"V", c.vocab_size}})
                         : impl->resolve(kLmheadArgmax, {{"V", c.vocab_size}, {"K", c.dim}});
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
  s.run_matmul(s.classifier, s.wcls, s.xb + static_cast<std::int64_t>(s.last_row) * s.c.dim, s.logits, 1,
               s.c.vocab_size, s.c.dim);
  if (Status st = s.library->synchronize(); !st) return st.error();
  if (Status st = s.memory.copy_out(s.host_logits.data(), s.logits, sizeof(float) * s.host_logits.size()); !st)
    return st.error();
  return std::span<const float>(s.host_logits);
}

Result<int> LlamaDecoder::forward_greedy(std::span<const int> tokens) {
  auto& s = *impl_;
  if (Status st = s.prompt(tokens); !st) return st.error();
  int vocab = s.c.vocab_size, dim = s.c.dim, token = 0;
  float* last = s.xb + static_cast<std::int64_t>(s.last_row) * dim;
  if (s.q8) {  // the Q8_0 classifier's logits, then their argmax
    s.run_matmul(s.classifier, s.wcls, last, s.logits, 1, vocab, dim);
    s.call(kArgmax, *s.argmax, {s.logits, s.token, &vocab});
  } else {
    s.call(kLmheadArgmax, *s.argmax, {arg(s.wcls), last, s.token, &vocab, &dim});
  }
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
  // Every op a matmul may take (matmul_ops): the preferred ones are run once tuned, so they are
  // what a search should tune; the last is the fallback.
  auto matmuls = [&](int m, int n, int k, const std::string& why) {
    for (Op op : matmul_ops(m, q8)) add(op, matmul_dims(op, m, n, k), why);
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
    if (m == 1) {
      matmuls(m, c.dim + 2 * c.kv_dim(), c.dim, when + " wq/wk/wv stacked");
    } else {
      matmuls(m, c.dim, c.dim, when + " wq");
      matmuls(m, c.kv_dim(), c.dim, when + " wk/wv");
    }
    matmuls(m, c.dim, c.dim, when + " wo");
    if (m == 1 && !q8) add(kGemvSwiglu, {{"N", c.hidden_dim}, {"K", c.dim}}, when + " w1/w3 + swiglu fused");
    matmuls(m, c.hidden_dim, c.dim, when + " w1/w3");
    add(kSwiglu, {{"M", mm}, {"N", c.hidden_dim}}, when);
    matmuls(m, c.dim, c.hidden_dim, when + " w2");
    if (m > 1) add(kAttnPrefill, {{"S", mm}, {"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}}, when);
  }
  add(kKvAppend, {{"L", c.seq_len + 1}, {"KVH", c.n_kv_heads}, {"D", c.head_size()}, {"pos", c.seq_len}},
      fmt::format("one per position pos = 1..{}", c.seq_len));
  add(kAttnDecode, {{"H", c.n_heads}, {"KVH", c.n_kv_heads}, {"L", c.seq_len}, {"D", c.head_size()}},
      fmt::format("one per context length L = 1..{}", c.seq_len));
  matmuls(1, c.vocab_size, c.dim, "classifier logits");
  if (q8) add(kArgmax, {{"V", c.vocab_size}}, "greedy token over the logits");
  else add(kLmheadArgmax, {{"V", c.vocab_size}, {"K", c.dim}}, "greedy classifier");
  return out;
}

LlamaDecoder::LlamaDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaDecoder::LlamaDecoder(LlamaDecoder&&) noexcept = default;
LlamaDecoder& LlamaDecoder::operator=(LlamaDecoder&&) noexcept = default;
LlamaDecoder::~LlamaDecoder() = default;

}  // namespace kforge
