// inference: a Llama-architecture decoder whose every op is a kernel of the `llm` suite, resolved
// through a KernelLibrary, so the same model runs on the baseline kernels or on the tuned ones.
//
//   auto model = kforge::LlamaModel::load("stories15M.bin");     // llama2.c checkpoint, mmap'd
//   if (!model) return fail(model.error().message);             // one line: truncated, bad header
//   auto lib = kforge::KernelLibrary::open("kforge.db", {.tasks_dir = "tasks"});
//   auto decoder = kforge::LlamaDecoder::create(*model, *lib);   // resolves the decode kernels
//   auto logits = decoder->forward(prompt_ids);                  // prefill: logits of the last token
//   auto next = decoder->forward_greedy(std::span(&token, 1));   // one decode step, argmax on the kernel
//
// The checkpoint is llama2.c's format: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier follows), then
// f32 weights in llama2.c's order (token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
// rms_final, freq_cis_real and freq_cis_imag (unused), wcls if unshared). The file must be exactly
// that size. llama2.c rotates interleaved pairs (2i, 2i+1); llm/rope rotates NEOX pairs (i, i+D/2).
// load() permutes the rows of wq and wk within each head (row 2i -> i, row 2i+1 -> i + D/2, as
// Hugging Face's conversion does), which changes q and k by the same permutation and so leaves
// every attention score, and the logits, as llama2.c computes them.
//
// How a forward pass maps onto the ops, for M tokens at positions p..p+M-1 (M = 1 is a decode step):
//   llm/embedding,
//   llm/rmsnorm once, then per layer: the q/k/v projections (one llm/gemv over wq, wk and wv stacked
//   for M = 1; llm/gemm_flat per matrix for M <= 64, llm/gemm_prefill above), llm/rope, llm/kv_append
//   per token, attention (llm/attn_prefill for a chunk that starts at position 0, else
//   llm/attn_decode per token over the cache), the output projection, llm/add_rmsnorm (the residual
//   add fused with the FFN norm), w1 and w3 with llm/swiglu (for M = 1 one llm/gemv_swiglu where the
//   library has a tuned one), w2, llm/add_rmsnorm (the residual add fused with the next layer's
//   norm, or the final norm); then the classifier: llm/gemv over the vocabulary for logits, or
//   llm/lmhead_argmax for a greedy token.
// With Q8_0 weights every projection and the classifier are Q8_0: llm/gemv_q8_0_q8 (x quantized to
// Q8_0 as ggml does, integer dot products) where the library has a tuned one, else llm/gemv_q8_0,
// per token; a chunk of tokens takes llm/gemm_q8_0_q8 where tuned; a greedy token is llm/argmax
// over the logits.
// The KV cache is [seq_len + 1, KVH, D] per layer with row 0 unused: llm/kv_append's `pos` is a size
// and sizes start at 1, so position t lives in row t + 1.
//
// The decoder runs where its library does. On the cpu the kernels read the mapped weights and host
// activations. On a GPU (a KernelLibrary opened with backend cuda or hip), create() uploads the
// weights once to the library's device and allocates the activations and the KV cache there; a
// forward pass copies the token ids and positions in, enqueues every kernel on the library's
// stream, waits for them (KernelLibrary::synchronize, which reports a failed launch) and copies
// back only the logits, or the greedy token. Both run the same forward pass: buffers are addresses,
// host or device, handed to the kernels as they are. With options.profile on a GPU every kernel
// call is waited for, so op_times() are the kernels' times (plus a launch each).
//
// Kernels are resolved once per shape and kept: the decode step's when the decoder is created, the
// per-position ones (kv_append, attn_decode) and per-chunk-size ones on first use. Errors are
// values: a dim no kernel of an op is defined at (attn_decode's D <= 256, H <= 128), a position past
// seq_len, a token outside the vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/common.hpp"
#include "common/expr.hpp"
#include "inference/kernel_library.hpp"

namespace kforge {

struct LlamaConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;  // the classifier is the token embedding (llama2.c: vocab_size > 0)

  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return head_size() * n_kv_heads; }
  // Weights in the file, in floats (freq_cis included), and the file's exact size in bytes.
  std::int64_t file_floats() const;
  std::int64_t file_bytes() const { return 28 + 4 * file_floats(); }
  // Parameters of the model proper (no freq_cis).
  std::int64_t parameters() const;
  // "dim 64, hidden 172, 2 layers, 4 heads, 2 kv heads, vocab 256, seq_len 128"
  std::string describe() const;
};

// Why a header cannot be a model (a size outside 1..2^22, over 4096 layers, heads that do not
// divide dim, an odd head size), or nothing.
Status check_llama_config(const LlamaConfig& config);

// Pointers to one set of weights, laid out as llama2.c's: per-layer tensors are contiguous [L, ...].
// The model's weights() stack each layer's wq, wk and wv into wqkv, so a decode step reads them in
// one pass (one gemv, one parallel region); wq, wk, wv point into the file only while it is read.
struct LlamaWeights {
  const float* token_embedding = nullptr;  // [vocab, dim]
  const float* rms_att = nullptr;          // [L, dim]
  const float* wq = nullptr;               // [L, dim, dim]
  const float* wk = nullptr;               // [L, kv_dim, dim]
  const float* wv = nullptr;               // [L, kv_dim, dim]
  const float* wqkv = nullptr;             // [L, dim + 2 kv_dim, dim]: wq, wk (NEOX rows), wv of each layer
  const float* wo = nullptr;               // [L, dim, dim]
  const float* rms_ffn = nullptr;          // [L, dim]
  const float* w1 = nullptr;               // [L, hidden, dim]
  const float* w2 = nullptr;               // [L, dim, hidden]
  const float* w3 = nullptr;               // [L, hidden, dim]
  const float* rms_final = nullptr;        // [dim]
  const float* wcls = nullptr;             // [vocab, dim]: token_embedding when shared
};

// How the decoder holds the projection matrices and the classifier. q8_0: quantized at load as
// ggml's quantize_row_q8_0_ref does (llm/gemv_q8_0's format; dim and hidden_dim multiples of 32);
// the embedding and the norms stay f32.
enum class LlamaWeightFormat { f32, q8_0 };
const char* to_string(LlamaWeightFormat format);  // "f32", "q8_0"

// The projections and the classifier in Q8_0, stacked per layer like LlamaWeights' ([L, N, K / 32]
// blocks of 34 bytes).
struct LlamaQ8Weights {
  const std::uint8_t *wqkv = nullptr, *wo = nullptr, *w1 = nullptr, *w2 = nullptr, *w3 = nullptr, *wcls = nullptr;
};

// A llama2.c checkpoint, memory-mapped; wq and wk permuted for NEOX rope (above) and stacked with wv
// into an owned wqkv.
class LlamaModel {
 public:
  // Refuses a missing or unreadable file, a bad header, and a size that is not the header's, with
  // one line naming the file; for q8_0, widths that are not whole blocks.
  static Result<LlamaModel> load(const std::string& path, LlamaWeightFormat format = LlamaWeightFormat::f32);

  const LlamaConfig& config() const;
  const std::string& path() const;
  // The weights the decoder uses: wqkv, no wq, wk, wv; with q8_0 weights no wqkv either
  // (q8_weights() holds the projections and the classifier).
  const LlamaWeights& weights() const;
  LlamaWeightFormat format() const;
  // The quantized projections (q8_0), else null.
  const LlamaQ8Weights* q8_weights() const;

  LlamaModel(LlamaModel&&) noexcept;
  LlamaModel& operator=(LlamaModel&&) noexcept;
  ~LlamaModel();

 private:
  struct Impl;
  explicit LlamaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes a deterministic synthetic llama2.c checkpoint of `config`: weights drawn from `seed`,
// scaled by 1 / sqrt(fan-in) so activations keep unit scale through the layers; norms near 1.
Status write_synthetic_llama(const std::string& path, const LlamaConfig& config, std::uint64_t seed);

// One kernel problem of a model: the op and every dim, as KernelLibrary::resolve takes them.
struct LlamaProblem {
  std::string op;
  Bindings dims;
  std::string why;  // "q/o projection", "attention over 1..seq_len positions", ...
};

struct LlamaRunOptions {
  int max_chunk = 64;          // tokens per forward pass of a prompt: gemm_flat up to 64, gemm_prefill above
  float rope_theta = 10000;    // llama2.c's
  bool profile = false;        // time every kernel call, by op (op_times()); on a GPU, waiting for each
};

class LlamaDecoder {
 public:
  // Resolves the decode step's kernels through `library`, which must outlive the decoder (as
  // must `model`), and on a GPU library puts the weights, activations and KV cache in its device's
  // memory. An error names the op and dims no kernel is defined at, or the device's failure.
  static Result<LlamaDecoder> create(const LlamaModel& model, KernelLibrary& library, LlamaRunOptions options = {});

  // Runs `tokens` at the next positions (a prompt in chunks of max_chunk, or one decode step) and
  // returns the logits of the last one: vocab_size floats, valid until the next call.
  Result<std::span<const float>> forward(std::span<const int> tokens);
  // The same, then the greedy next token through llm/lmhead_argmax (no logits are stored).
  Result<int> forward_greedy(std::span<const int> tokens);

  void reset();  // back to position 0 (the cache is overwritten as it fills again)
  int position() const;

  // Seconds in each op's kernels and calls, summed since creation (with options.profile), by
  // op name ("llm/gemv"), ops never called left out.
  struct OpTime {
    std::string op;
    double seconds = 0;
    std::int64_t calls = 0;
  };
  std::vector<OpTime> op_times() const;
  // The kernels resolved so far, one line each: "llm/gemv K=64,N=64: exact: kernel ...".
  std::vector<std::string> explain() const;

  // Every problem a run of `config` can resolve: decode (M = 1) at every position, and prompts in
  // chunks of up to max_chunk tokens (the chunk sizes 1..max_chunk collapse to the largest, the
  // one a long prompt uses, listed once). Problems no kernel is defined at are left out, as the
  // decoder does not run them (llm/embedding under V = 4096). Positions collapse too: kv_append
  // and attn_decode are listed at the full context, pos = L - 1 and L = seq_len.
  static std::vector<LlamaProblem> problems(const LlamaConfig& config, const LlamaRunOptions& options = {},
                                            LlamaWeightFormat format = LlamaWeightFormat::f32);

  LlamaDecoder(LlamaDecoder&&) noexcept;
  LlamaDecoder& operator=(LlamaDecoder&&) noexcept;
  ~LlamaDecoder();

 private:
  struct Impl;
  explicit LlamaDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A llama2.c tokenizer.bin: int32 max_token_length, then per token an f32 score, an int32 length
// and the bytes (no NUL). Ids 0, 1, 2 are <unk>, <s>, </s>; ids 3..258 the byte pieces <0x00>..<0xFF>
// that llama2.c's byte fallback emits (id = byte + 3); " " is the dummy prefix every encoding starts
// with. Encodes a prompt and decodes tokens as llama2.c's run.c does.
class LlamaTokenizer {
 public:
  // The smallest vocabulary llama2.c's encoder can run on: 3 specials, 256 byte pieces and " ".
  static constexpr int kMinVocab = 260;

  // Refuses a file that is truncated or holds another number of tokens than `vocab_size`. A piece
  // holding a NUL ends there (llama2.c reads C strings); of equal pieces the lowest id is found.
  static Result<LlamaTokenizer> load(const std::string& path, int vocab_size);
  // Writes the synthetic tokenizer make-model pairs with its model, a llama2.c one: 0 <unk>,
  // 1 <s>, 2 </s>, the byte pieces (3..258), " ", the printable ASCII characters and a few other
  // codepoints, then pieces made by merges (" t", " th", " the", ..., " a", " b", ..., " aa", ...),
  // score 0 for the specials and bytes, then falling with the id. Refuses a vocab_size under kMinVocab.
  static Status write_synthetic(const std::string& path, int vocab_size);

  // The text of `token` following `previous` (llama2.c's decode: a leading space is dropped after
  // <s>, a byte piece <0xHH> is its byte).
  std::string decode(int previous, int token) const;
  // llama2.c's encode of `text`, with <s> first and no </s>: " " first (unless the text is empty),
  // each UTF-8 codepoint's piece or else its bytes' pieces (byte + 3), then the adjacent pair
  // whose concatenation is the best-scoring piece merged, repeatedly. An error where llama2.c would
  // read out of bounds: no " " piece, a byte past the vocabulary; and for a NUL in the text.
  Result<std::vector<int>> encode(const std::string& text) const;
  int size() const { return static_cast<int>(pieces_.size()); }
  const std::string& piece(int id) const { return pieces_[static_cast<std::size_t>(id)]; }
  float score(int id) const { return scores_[static_cast<std::size_t>(id)]; }
  // The id of a piece, or -1.
  int id(std::string_view piece) const;

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;
};

}  // namespace kforge
