// LlamaModel: a llama2.c checkpoint's header checked and its weights memory-mapped (wq and wk
// permuted for NEOX rope and stacked with wv; or the projections and the classifier quantized to
// Q8_0); and the writer of deterministic synthetic checkpoints.
#include "inference/llama.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include "task/task.hpp"  // quantize(): ggml's quantize_row_q8_0_ref
#include "inference/model_file.hpp"

namespace kforge {

// ---- config ----

std::int64_t LlamaConfig::file_floats() const {
  const std::int64_t d = dim, h = hidden_dim, l = n_layers, v = vocab_size, kv = kv_dim();
  const std::int64_t per_layer = d + d * d + 2 * kv * d + d * d + d + 3 * h * d;
  const std::int64_t freq_cis = static_cast<std::int64_t>(seq_len) * (head_size() / 2) * 2;
  return v * d + l * per_layer + d + freq_cis + (shared_classifier ? 0 : v * d);
}

std::int64_t LlamaConfig::parameters() const {
  const std::int64_t freq_cis = static_cast<std::int64_t>(seq_len) * (head_size() / 2) * 2;
  return file_floats() - freq_cis;
}

std::string LlamaConfig::describe() const {
  return fmt::format("dim {}, hidden {}, {} layers, {} heads, {} kv heads, vocab {}{}, seq_len {}", dim, hidden_dim,
                     n_layers, n_heads, n_kv_heads, vocab_size, shared_classifier ? "" : " (own classifier)", seq_len);
}

Status check_llama_config(const LlamaConfig& c) {
  const std::pair<const char*, int> sizes[] = {{"dim", c.dim},         {"hidden_dim", c.hidden_dim},
                                               {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
                                               {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
                                               {"seq_len", c.seq_len}};
  // The caps keep every size product of file_floats() far inside int64.
  for (const auto& [name, value] : sizes)
    if (value < 1 || value > (1 << 22))
      return make_error(ErrorKind::invalid_input, "{} = {}: expected a size from 1 to {}", name, value, 1 << 22);
  if (c.n_layers > 4096)
    return make_error(ErrorKind::invalid_input, "n_layers = {}: expected at most 4096", c.n_layers);
  if (c.dim % c.n_heads != 0)
    return make_error(ErrorKind::invalid_input, "dim {} is not a multiple of n_heads {}", c.dim, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    return make_error(ErrorKind::invalid_input, "n_heads {} is not a multiple of n_kv_heads {}", c.n_heads,
                      c.n_kv_heads);
  if (c.head_size() % 2 != 0)
    return make_error(ErrorKind::invalid_input, "head size {} (dim / n_heads) is odd: rope rotates pairs",
                      c.head_size());
  return {};
}

namespace {

// Offsets of each tensor in the file's float array, llama2.c's order.
LlamaWeights layout(const float* p, const LlamaConfig& c) {
  const std::int64_t d = c.dim, h = c.hidden_dim, l = c.n_layers, v = c.vocab_size, kv = c.kv_dim();
  LlamaWeights w;
  w.token_embedding = p, p += v * d;
  w.rms_att = p, p += l * d;
  w.wq = p, p += l * d * d;
  w.wk = p, p += l * kv * d;
  w.wv = p, p += l * kv * d;
  w.wo = p, p += l * d * d;
  w.rms_ffn = p, p += l * d;
  w.w1 = p, p += l * h * d;
  w.w2 = p, p += l * d * h;
  w.w3 = p, p += l * h * d;
  w.rms_final = p, p += d;
  p += static_cast<std::int64_t>(c.seq_len) * (c.head_size() / 2) * 2;  // freq_cis_real, freq_cis_imag
  w.wcls = c.shared_classifier ? w.token_embedding : p;
  return w;
}

// Rows of `heads` heads of `head_size` rows each (every row `cols` floats), with each head's rows
// reordered from interleaved pairs to NEOX halves: row 2i -> i, row 2i + 1 -> i + head_size / 2.
// Each layer's wq and wk rows permuted for NEOX rope (row 2i -> i, 2i+1 -> i + D/2 within each
// head), then its wv rows: [L, dim + 2 kv_dim, dim].
std::vector<float> qkv_rows(const LlamaWeights& file, const LlamaConfig& c) {
  const std::int64_t d = c.dim, kv = c.kv_dim(), hs = c.head_size(), rows = d + 2 * kv;
  std::vector<float> out(static_cast<std::size_t>(c.n_layers * rows * d));
  auto copy_row = [&](float* dst, const float* src) { std::memcpy(dst, src, sizeof(float) * d); };
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    float* layer = out.data() + l * rows * d;
    auto neox = [&](const float* w, std::int64_t heads, float* dst) {
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t i = 0; i < hs / 2; ++i) {
          copy_row(dst + (h * hs + i) * d, w + (h * hs + 2 * i) * d);
          copy_row(dst + (h * hs + i + hs / 2) * d, w + (h * hs + 2 * i + 1) * d);
        }
    };
    neox(file.wq + l * d * d, c.n_heads, layer);
    neox(file.wk + l * kv * d, c.n_kv_heads, layer + d * d);
    std::memcpy(layer + (d + kv) * d, file.wv + l * kv * d, sizeof(float) * kv * d);
  }
  return out;
}

}  // namespace

// ---- model ----

const char* to_string(LlamaWeightFormat format) {
  return format == LlamaWeightFormat::q8_0 ? "q8_0" : "f32";
}

namespace {

// `rows` rows of `cols` floats as Q8_0 blocks.
std::vector<std::uint8_t> quantize_q8_0(const float* w, std::int64_t rows, std::int64_t cols) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(tensor_bytes(DType::q8_0, rows * cols)));
  quantize(DType::q8_0, w, out.data(), rows * cols);
  return out;
}

}  // namespace

std::size_t q8_0_bytes(std::size_t rows, std::size_t cols) {
  return static_cast<std::size_t>(tensor_bytes(DType::q8_0, static_cast<std::int64_t>(rows * cols)));
}

struct LlamaModel::Impl {
  std::string path;
  LlamaConfig config;
  LlamaWeightFormat format = LlamaWeightFormat::f32;
  std::array<std::vector<std::uint8_t>, 6> q8_storage;
  LlamaQ8Weights q8;
  void* map = nullptr;
  std::size_t map_bytes = 0;
  std::vector<float> wqkv;  // wq, wk permuted for NEOX rope, and wv
  LlamaWeights weights;
  ~Impl() {
    if (map) munmap(map, map_bytes);
  }
};

Result<LlamaModel> LlamaModel::load(const std::string& path, LlamaWeightFormat format) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorKind::io, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorKind::io, "{}: not a regular file", path);
  }
  const auto bytes = static_cast<std::int64_t>(st.st_size);
  std::int32_t header[7] = {};
  if (bytes < static_cast<std::int64_t>(sizeof header) || ::pread(fd, header, sizeof header, 0) != sizeof header) {
    ::close(fd);
    return make_error(ErrorKind::invalid_input, "{}: {} bytes: too short for a llama2.c checkpoint header (28 bytes)",
                      path, bytes);
  }
  LlamaConfig c;
  c.dim = header[0], c.hidden_dim = header[1], c.n_layers = header[2], c.n_heads = header[3];
  c.n_kv_heads = header[4], c.vocab_size = header[5], c.seq_len = header[6];
  c.shared_classifier = c.vocab_size > 0;
  c.vocab_size = c.vocab_size == INT32_MIN ? 0 : std::abs(c.vocab_size);
  if (Status s = check_llama_config(c); !s) {
    ::close(fd);
    return make_error(ErrorKind::invalid_input, "{}: not a llama2.c checkpoint: header {}", path, s.error().message);
  }
  if (bytes != c.file_bytes()) {
    ::close(fd);
    return make_error(ErrorKind::invalid_input, "{}: {} bytes, but its header ({}) needs {}: {}", path, bytes,
                      c.describe(), c.file_bytes(),
                      bytes < c.file_bytes() ? "truncated" : "the header does not match the file");
  }
  if (format == LlamaWeightFormat::q8_0 && (c.dim % 32 != 0 || c.hidden_dim % 32 != 0)) {
    ::close(fd);
    return make_error(ErrorKind::invalid_input,
                      "{}: q8_0 weights need dim and hidden_dim in whole 32-element blocks, not dim {}, hidden {}", path,
                      c.dim, c.hidden_dim);
  }
  void* map = mmap(nullptr, static_cast<std::size_t>(bytes), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return make_error(ErrorKind::io, "{}: cannot map: {}", path, std::strerror(errno));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->config = c;
  impl->map = map;
  impl->map_bytes = static_cast<std::size_t>(bytes);
  const LlamaWeights file = layout(reinterpret_cast<const float*>(static_cast<const char*>(map) + 28), c);
  impl->wqkv = qkv_rows(file, c);
  impl->weights = file;
  impl->weights.wq = impl->weights.wk = impl->weights.wv = nullptr;
  impl->weights.wqkv = impl->wqkv.data();
  impl->format = format;
  if (format == LlamaWeightFormat::q8_0) {
    const std::int64_t l = c.n_layers, d = c.dim, h = c.hidden_dim, kv = c.kv_dim();
    const LlamaWeights& w = impl->weights;
    auto& q = impl->q8_storage;
    q[0] = quantize_q8_0(w.wqkv, l * (d + 2 * kv), d), q[1] = quantize_q8_0(w.wo, l * d, d);
    q[2] = quantize_q8_0(w.w1, l * h, d), q[3] = quantize_q8_0(w.w2, l * d, h), q[4] = quantize_q8_0(w.w3, l * h, d);
    q[5] = quantize_q8_0(w.wcls, c.vocab_size, d);
    impl->q8 = {q[0].data(), q[1].data(), q[2].data(), q[3].data(), q[4].data(), q[5].data()};
    impl->wqkv = {};  // only the quantized copy is used
    impl->weights.wqkv = nullptr;
  }
  return LlamaModel(std::move(impl));
}

const LlamaConfig& LlamaModel::config() const {
  return impl_->config;
}
const std::string& LlamaModel::path() const {
  return impl_->path;
}
const LlamaWeights& LlamaModel::weights() const {
  return impl_->weights;
}
LlamaWeightFormat LlamaModel::format() const {
  return impl_->format;
}
const LlamaQ8Weights* LlamaModel::q8_weights() const {
  return impl_->format == LlamaWeightFormat::q8_0 ? &impl_->q8 : nullptr;
}
LlamaModel::LlamaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaModel::LlamaModel(LlamaModel&&) noexcept = default;
LlamaModel& LlamaModel::operator=(LlamaModel&&) noexcept = default;
LlamaModel::~LlamaModel() = default;

// ---- synthetic checkpoints ----

namespace {

// splitmix64 and Box-Muller: the same bytes on every platform (std::normal_distribution is not).
struct Normal {
  std::uint64_t state;
  std::optional<float> spare;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  float operator()() {
    if (spare) return std::exchange(spare, std::nullopt).value();
    const double r = std::sqrt(-2 * std::log(uniform())), t = 2 * M_PI * uniform();
    spare = static_cast<float>(r * std::sin(t));
    return static_cast<float>(r * std::cos(t));
  }
};

}  // namespace

Status write_synthetic_llama(const std::string& path, const LlamaConfig& c, std::uint64_t seed) {
  if (Status s = check_llama_config(c); !s) return s;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(ErrorKind::io, "{}: cannot open for writing: {}", path, std::strerror(errno));
  Normal normal{seed * 0x2545f4914f6cdd1dull + 1, std::nullopt};
  bool ok = true;
  std::vector<float> buffer;
  // n floats of std * N(0, 1) + mean, written in pieces.
  auto put = [&](std::int64_t n, float std, float mean) {
    while (ok && n > 0) {
      const std::int64_t piece = std::min<std::int64_t>(n, 1 << 20);
      buffer.resize(static_cast<std::size_t>(piece));
      for (auto& x : buffer) x = mean + std * normal();
      ok = std::fwrite(buffer.data(), sizeof(float), buffer.size(), f) == buffer.size();
      n -= piece;
    }
  };
  const std::int32_t header[7] = {c.dim,        c.hidden_dim,
                                  c.n_layers,   c.n_heads,
                                  c.n_kv_heads, c.shared_classifier ? c.vocab_size : -c.vocab_size,
                                  c.seq_len};
  ok = std::fwrite(header, sizeof header, 1, f) == 1;
  const std::int64_t d = c.dim, h = c.hidden_dim, l = c.n_layers, v = c.vocab_size, kv = c.kv_dim();
  const float in_dim = 1 / std::sqrt(static_cast<float>(d)), in_hidden = 1 / std::sqrt(static_cast<float>(h));
  // The residual stream takes 2 L additions: the output projections are scaled down by sqrt(2 L).
  const float out_scale = 1 / std::sqrt(2.0f * static_cast<float>(l));
  // token_embedding at 1 / sqrt(dim): the layers' outputs, not the input token's own row, then
  // dominate the residual stream, so a shared classifier does not just repeat the last token.
  put(v * d, in_dim, 0);
  put(l * d, 0.1f, 1);                    // rms_att
  put(l * d * d, in_dim, 0);              // wq
  put(l * kv * d, in_dim, 0);             // wk
  put(l * kv * d, in_dim, 0);             // wv
  put(l * d * d, in_dim * out_scale, 0);  // wo
  put(l * d, 0.1f, 1);                    // rms_ffn
  put(l * h * d, in_dim, 0);              // w1
  put(l * d * h, in_hidden * out_scale, 0);  // w2
  put(l * h * d, in_dim, 0);              // w3
  put(d, 0.1f, 1);                        // rms_final
  // freq_cis_real and freq_cis_imag, as llama2.c's export wrote them (nothing reads them).
  const int half = c.head_size() / 2;
  for (int part = 0; part < 2 && ok; ++part) {
    buffer.clear();
    for (int p = 0; p < c.seq_len; ++p)
      for (int i = 0; i < half; ++i) {
        const double angle = p * std::pow(10000.0, -2.0 * i / c.head_size());
        buffer.push_back(static_cast<float>(part == 0 ? std::cos(angle) : std::sin(angle)));
      }
    ok = std::fwrite(buffer.data(), sizeof(float), buffer.size(), f) == buffer.size();
  }
  if (!c.shared_classifier) put(v * d, in_dim, 0);  // wcls
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return make_error(ErrorKind::io, "{}: write failed: {}", path, std::strerror(errno));
  return {};
}

}  // namespace kforge
