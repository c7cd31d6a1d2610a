// LlamaDecoder: its logits against a plain llama2.c-style forward pass written here (interleaved
// rope on the weights as stored), through every path (prompt chunks with attn_prefill, later chunks
// with attn_decode, gemm_flat, gemm_prefill, decode steps, the greedy argmax kernel); bad
// checkpoints; the tokenizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "evaluator/evaluator.hpp"  // quantize, dequantize: ggml's Q8_0
#include "inference/kernel_library.hpp"
#include "kernels_db/kernels_db.hpp"
#include "tests/publish_kernel.hpp"
#include "inference/llama.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

const std::string kTasks = std::string(KFORGE_SOURCE_DIR) + "/tasks";

// llama2.c's run.c forward(), on the file's floats as they are. Not bench/c_decoder.c's, which is
// the same algorithm built to be timed (-Ofast, float sums, weights mmap'd read-only): a reference
// sums in double under strict IEEE math, and rewrites its weights for the Q8_0 round trip.
class Reference {
 public:
  Reference(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    int header[7];
    in.read(reinterpret_cast<char*>(header), sizeof header);
    dim = header[0], hidden = header[1], layers = header[2], heads = header[3], kv_heads = header[4];
    vocab = std::abs(header[5]), seq_len = header[6];
    head = dim / heads, kv_dim = kv_heads * head;
    data.assign(std::istreambuf_iterator<char>(in), {});
    const float* p = reinterpret_cast<const float*>(data.data());
    emb = p, p += vocab * dim;
    rms_att = p, p += layers * dim;
    wq = p, p += layers * dim * dim;
    wk = p, p += layers * kv_dim * dim;
    wv = p, p += layers * kv_dim * dim;
    wo = p, p += layers * dim * dim;
    rms_ffn = p, p += layers * dim;
    w1 = p, p += layers * hidden * dim;
    w2 = p, p += layers * dim * hidden;
    w3 = p, p += layers * hidden * dim;
    rms_final = p, p += dim;
    p += seq_len * head;  // freq_cis_real and _imag, head / 2 each
    wcls = header[5] > 0 ? emb : p;
    key_cache.assign(static_cast<std::size_t>(layers * seq_len * kv_dim), 0);
    value_cache = key_cache;
  }

  // Replaces the seven projections and the classifier by their Q8_0 round trip (what a Q8_0
  // decoder multiplies by); a classifier shared with the embedding gets a copy of its own first,
  // since the embedding stays f32.
  void quantize_weights() {
    classifier.assign(wcls, wcls + static_cast<std::ptrdiff_t>(vocab) * dim);
    wcls = classifier.data();
    const std::pair<const float*, std::int64_t> tensors[] = {
        {wq, layers * dim * dim},    {wk, layers * kv_dim * dim}, {wv, layers * kv_dim * dim},
        {wo, layers * dim * dim},    {w1, layers * hidden * dim}, {w2, layers * dim * hidden},
        {w3, layers * hidden * dim}, {wcls, std::int64_t{vocab} * dim}};
    for (const auto& [tensor, n] : tensors) {
      std::vector<std::uint8_t> blocks(static_cast<std::size_t>(tensor_bytes(DType::q8_0, n)));
      quantize(DType::q8_0, tensor, blocks.data(), n);
      dequantize(DType::q8_0, blocks.data(), const_cast<float*>(tensor), n);  // our own copies
    }
  }

  std::vector<float> forward(int token, int pos) {
    std::vector<float> x(emb + token * dim, emb + (token + 1) * dim), xb(dim), q(dim), att(seq_len), hb(hidden),
        hb2(hidden), out(dim);
    for (int l = 0; l < layers; ++l) {
      rmsnorm(xb.data(), x.data(), rms_att + l * dim, dim);
      float* k = key_cache.data() + (l * seq_len + pos) * kv_dim;
      float* v = value_cache.data() + (l * seq_len + pos) * kv_dim;
      matmul(q.data(), xb.data(), wq + l * dim * dim, dim, dim);
      matmul(k, xb.data(), wk + l * kv_dim * dim, dim, kv_dim);
      matmul(v, xb.data(), wv + l * kv_dim * dim, dim, kv_dim);
      for (int i = 0; i < dim; i += 2) {  // interleaved pairs, as run.c
        const float freq = 1.0f / std::pow(10000.0f, static_cast<float>(i % head) / static_cast<float>(head));
        const float angle = static_cast<float>(pos) * freq, fcr = std::cos(angle), fci = std::sin(angle);
        for (int which = 0; which < (i < kv_dim ? 2 : 1); ++which) {
          float* vec = which == 0 ? q.data() : k;
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      for (int h = 0; h < heads; ++h) {
        const int g = h / (heads / kv_heads);
        for (int t = 0; t <= pos; ++t) {
          const float* kt = key_cache.data() + (l * seq_len + t) * kv_dim + g * head;
          float score = 0;
          for (int i = 0; i < head; ++i) score += q[h * head + i] * kt[i];
          att[t] = score / std::sqrt(static_cast<float>(head));
        }
        softmax(att.data(), pos + 1);
        for (int i = 0; i < head; ++i) {
          float sum = 0;
          for (int t = 0; t <= pos; ++t) sum += att[t] * value_cache[(l * seq_len + t) * kv_dim + g * head + i];
          xb[h * head + i] = sum;
        }
      }
      matmul(out.data(), xb.data(), wo + l * dim * dim, dim, dim);
      for (int i = 0; i < dim; ++i) x[i] += out[i];
      rmsnorm(xb.data(), x.data(), rms_ffn + l * dim, dim);
      matmul(hb.data(), xb.data(), w1 + l * hidden * dim, dim, hidden);
      matmul(hb2.data(), xb.data(), w3 + l * hidden * dim, dim, hidden);
      for (int i = 0; i < hidden; ++i) hb[i] = hb[i] / (1.0f + std::exp(-hb[i])) * hb2[i];
      matmul(out.data(), hb.data(), w2 + l * dim * hidden, hidden, dim);
      for (int i = 0; i < dim; ++i) x[i] += out[i];
    }
    rmsnorm(x.data(), x.data(), rms_final, dim);
    std::vector<float> logits(vocab);
    matmul(logits.data(), x.data(), wcls, dim, vocab);
    return logits;
  }

  int vocab = 0, seq_len = 0;

 private:
  static void rmsnorm(float* o, const float* x, const float* w, int n) {
    float ss = 0;
    for (int j = 0; j < n; ++j) ss += x[j] * x[j];
    ss = 1.0f / std::sqrt(ss / static_cast<float>(n) + 1e-5f);
    for (int j = 0; j < n; ++j) o[j] = w[j] * (ss * x[j]);
  }
  static void softmax(float* x, int n) {
    const float max = *std::max_element(x, x + n);
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - max);
    for (int i = 0; i < n; ++i) x[i] /= sum;
  }
  static void matmul(float* out, const float* x, const float* w, int n, int d) {  // W (d,n) @ x (n,)
    for (int i = 0; i < d; ++i) {
      double sum = 0;
      for (int j = 0; j < n; ++j) sum += static_cast<double>(w[i * n + j]) * x[j];
      out[i] = static_cast<float>(sum);
    }
  }

  int dim, hidden, layers, heads, kv_heads, head, kv_dim;
  std::vector<char> data;
  const float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
  std::vector<float> classifier;  // wcls's Q8_0 round trip
  std::vector<float> key_cache, value_cache;
};

// max |a - b| over max(1, max |b|).
double relative_diff(std::span<const float> a, const std::vector<float>& b) {
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return diff / scale;
}

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

class LlamaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-llama-" + std::to_string(getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    KernelLibraryOptions options;
    options.tasks_dir = kTasks;
    options.compiler.cache_dir = KFORGE_TEST_CACHE_DIR;
    auto library = KernelLibrary::open_baseline(options);
    ASSERT_TRUE(library.ok()) << library.error().message;
    library_ = std::make_unique<KernelLibrary>(std::move(*library));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const LlamaConfig& config, const std::string& name = "m.bin") {
    const std::string path = (dir_ / name).string();
    Status s = write_synthetic_llama(path, config, 7);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return path;
  }

  // Feeds `prompt` in one forward() (chunks of max_chunk), then `steps` greedy decode steps, and
  // checks every logits vector the decoder returns against the reference's.
  // The ops it ran and how often go to `ops`; `tolerance` is on the relative difference of the logits.
  void expect_reference_logits(const LlamaConfig& config, std::vector<int> prompt, int steps, int max_chunk,
                               LlamaWeightFormat format = LlamaWeightFormat::f32,
                               std::vector<LlamaDecoder::OpTime>* ops = nullptr, double tolerance = 1e-4) {
    const std::string path = write(config);
    auto model = LlamaModel::load(path, format);
    ASSERT_TRUE(model.ok()) << model.error().message;
    auto decoder = LlamaDecoder::create(*model, *library_, {.max_chunk = max_chunk});
    ASSERT_TRUE(decoder.ok()) << decoder.error().message;
    Reference reference(path);
    if (format == LlamaWeightFormat::q8_0) reference.quantize_weights();
    std::vector<float> want;
    for (std::size_t i = 0; i < prompt.size(); ++i) want = reference.forward(prompt[i], static_cast<int>(i));
    auto logits = decoder->forward(prompt);
    ASSERT_TRUE(logits.ok()) << logits.error().message;
    ASSERT_EQ(logits->size(), want.size());
    EXPECT_LE(relative_diff(*logits, want), tolerance) << "after the prompt of " << prompt.size();
    int pos = static_cast<int>(prompt.size());
    for (int step = 0; step < steps; ++step, ++pos) {
      const int token = argmax(want);
      want = reference.forward(token, pos);
      auto got = decoder->forward(std::span(&token, 1));
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_LE(relative_diff(*got, want), tolerance) << "step " << step << " at position " << pos;
    }
    EXPECT_EQ(decoder->position(), pos);
    if (ops) *ops = decoder->op_times();
  }

  fs::path dir_;
  std::unique_ptr<KernelLibrary> library_;
};

LlamaConfig small_config() {
  return {.dim = 64, .hidden_dim = 172, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 256, .seq_len = 96};
}

TEST_F(LlamaTest, LogitsMatchReferenceWithPrefillThenDecode) {
  expect_reference_logits(small_config(), {1, 17, 200, 3, 45, 99, 128}, 6, 64);  // attn_prefill, gemm_flat
}

TEST_F(LlamaTest, LogitsMatchReferenceTokenByToken) {
  expect_reference_logits(small_config(), {1, 5, 9}, 8, 1);  // gemv and attn_decode only
}

TEST_F(LlamaTest, LogitsMatchReferenceInLaterChunks) {
  // Chunks of 3 from position 0: the first through attn_prefill, the rest attn_decode per token.
  expect_reference_logits(small_config(), {1, 2, 3, 4, 5, 6, 7, 8}, 2, 3);
}

TEST_F(LlamaTest, LogitsMatchReferenceWithGemmPrefill) {
  std::vector<int> prompt;
  for (int i = 0; i < 70; ++i) prompt.push_back((i * 37 + 11) % 256);
  expect_reference_logits(small_config(), prompt, 2, 128);  // M = 70: gemm_prefill
}

TEST_F(LlamaTest, LogitsMatchReferenceWithOwnClassifierAndMha) {
  LlamaConfig c = {.dim = 32, .hidden_dim = 80, .n_layers = 3, .n_heads = 2, .n_kv_heads = 2, .vocab_size = 300,
                   .seq_len = 16, .shared_classifier = false};
  expect_reference_logits(c, {1, 260, 299}, 5, 64);
}

TEST_F(LlamaTest, LogitsMatchReferenceWithQ8Weights) {
  LlamaConfig c = small_config();
  c.hidden_dim = 192;  // whole Q8_0 blocks
  expect_reference_logits(c, {1, 17, 200, 3}, 5, 64, LlamaWeightFormat::q8_0);  // gemv_q8_0 per token
  auto model = LlamaModel::load((dir_ / "m.bin").string(), LlamaWeightFormat::q8_0);
  ASSERT_TRUE(model.ok());
  auto decoder = LlamaDecoder::create(*model, *library_, {.profile = true});
  ASSERT_TRUE(decoder.ok());
  const std::vector<int> prompt = {1, 2};
  ASSERT_TRUE(decoder->forward(prompt).ok());
  std::int64_t q8_calls = 0;
  for (const auto& t : decoder->op_times()) {
    EXPECT_NE(t.op, "llm/gemm_flat");
    if (t.op == "llm/gemv_q8_0") q8_calls = t.calls;
  }
  EXPECT_EQ(q8_calls, 2 * 2 * 7 + 1);  // per token, layer and projection; then the Q8_0 classifier
  // Widths that are not whole blocks are refused.
  auto odd = LlamaModel::load(write(small_config(), "odd.bin"), LlamaWeightFormat::q8_0);
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("q8_0 weights need dim and hidden_dim in whole 32-element blocks"),
            std::string::npos)
      << odd.error().message;
}

// Where the library has a tuned kernel for a fused or an integer-dot op, the decoder runs it instead
// of the plain ops, and the logits still match llama2.c's (within the activations' Q8_0 rounding).
TEST_F(LlamaTest, TunedFusedAndIntegerDotOpsReplaceThePlainOnes) {
  LlamaConfig c = small_config();
  c.hidden_dim = 192;  // whole Q8_0 blocks
  const std::string db = (dir_ / "tuned.db").string(), here = "cpu:" + host_cpu_name();
  ASSERT_TRUE(KernelStore::open(db).ok());
  auto seed = [](const std::string& task, const std::string& file) {
    auto text = read_file(kTasks + "/llm/" + task + "/seeds/" + file);
    EXPECT_TRUE(text.ok()) << task << "/" << file;
    return text ? *text : "";
  };
  publish_kernel(db, "llm/gemv_swiglu", here, seed("gemv_swiglu", "cpu_omp_simd.cpp"), "cpu_omp_simd.cpp",
                 {{"K=64,N=192", 1.0}});
  // Every q8 projection: wq/wk/wv stacked, wq or wo, wk or wv, w1/w3, w2, the classifier.
  publish_kernel(db, "llm/gemv_q8_0_q8", here, seed("gemv_q8_0_q8", "cpu_int8_dot.cpp"), "cpu_int8_dot.cpp",
                 {{"K=64,N=128", 1.0},
                  {"K=64,N=64", 1.0},
                  {"K=64,N=32", 1.0},
                  {"K=64,N=192", 1.0},
                  {"K=192,N=64", 1.0},
                  {"K=64,N=256", 1.0}},
                 "", "q8_0");
  KernelLibraryOptions options;
  options.tasks_dir = kTasks;
  options.compiler.cache_dir = KFORGE_TEST_CACHE_DIR;
  auto tuned = KernelLibrary::open(db, options);
  ASSERT_TRUE(tuned.ok()) << tuned.error().message;
  library_ = std::make_unique<KernelLibrary>(std::move(*tuned));
  auto calls = [](const std::vector<LlamaDecoder::OpTime>& ops, const std::string& op) {
    for (const auto& t : ops)
      if (t.op == op) return t.calls;
    return std::int64_t{0};
  };

  std::vector<LlamaDecoder::OpTime> ops;
  expect_reference_logits(c, {1, 17, 200}, 4, 64, LlamaWeightFormat::f32, &ops);
  EXPECT_EQ(calls(ops, "llm/gemv_swiglu"), 4 * 2);  // per decode step and layer
  EXPECT_EQ(calls(ops, "llm/swiglu"), 2);           // the prompt's chunk only

  // x quantized to Q8_0 per block of 32 moves each logit by ~1e-2 of its scale: a looser bound.
  expect_reference_logits(c, {1, 17, 200}, 4, 64, LlamaWeightFormat::q8_0, &ops, 3e-2);
  // The prompt: 7 per token and layer (no llm/gemm_q8_0_q8 tuned), then its logits; each step: q/k/v
  // stacked, wo, w1, w3, w2 per layer, then the logits.
  EXPECT_EQ(calls(ops, "llm/gemv_q8_0_q8"), 3 * 2 * 7 + 1 + 4 * (2 * 5 + 1));
  EXPECT_EQ(calls(ops, "llm/gemv_q8_0"), 0);
}

TEST_F(LlamaTest, GreedyTokenIsTheArgmaxOfTheLogits) {
  const std::string path = write(small_config());
  auto model = LlamaModel::load(path);
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto a = LlamaDecoder::create(*model, *library_, {.profile = true});
  auto b = LlamaDecoder::create(*model, *library_);
  ASSERT_TRUE(a.ok() && b.ok());
  int token = 1;
  for (int step = 0; step < 5; ++step) {
    auto greedy = a->forward_greedy(std::span(&token, 1));
    auto logits = b->forward(std::span(&token, 1));
    ASSERT_TRUE(greedy.ok() && logits.ok());
    const std::vector<float> l(logits->begin(), logits->end());
    EXPECT_EQ(*greedy, argmax(l));
    token = *greedy;
  }
  bool saw_argmax = false, saw_gemv = false;
  for (const auto& t : a->op_times()) {
    saw_argmax |= t.op == "llm/lmhead_argmax" && t.calls == 5;
    // Per layer: wq, wk and wv stacked in one call, wo, w1, w3, w2.
    saw_gemv |= t.op == "llm/gemv" && t.calls == 5 * 2 * 5;
    EXPECT_GE(t.seconds, 0) << t.op;
  }
  EXPECT_TRUE(saw_argmax);
  EXPECT_TRUE(saw_gemv);
  for (const auto& line : a->explain()) EXPECT_NE(line.find("baseline: cpu_naive.cpp"), std::string::npos) << line;
}

TEST_F(LlamaTest, RefusesPastTheContextAndOutsideTheVocabulary) {
  LlamaConfig c = small_config();
  c.seq_len = 4;
  auto model = LlamaModel::load(write(c));
  ASSERT_TRUE(model.ok());
  auto decoder = LlamaDecoder::create(*model, *library_);
  ASSERT_TRUE(decoder.ok());
  const std::vector<int> bad = {256};
  auto r = decoder->forward(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("token 256 is outside the vocabulary"), std::string::npos) << r.error().message;
  const std::vector<int> five = {1, 2, 3, 4, 5};
  r = decoder->forward(five);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("past the model's context (seq_len 4)"), std::string::npos) << r.error().message;
}

TEST_F(LlamaTest, RefusesTruncatedAndMismatchedCheckpoints) {
  const std::string path = write(small_config());
  const auto size = fs::file_size(path);
  const std::string cut = (dir_ / "cut.bin").string(), longer = (dir_ / "long.bin").string();
  fs::copy_file(path, cut);
  fs::resize_file(cut, size - 4);
  fs::copy_file(path, longer);
  fs::resize_file(longer, size + 8);
  auto m = LlamaModel::load(cut);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("cut.bin: " + std::to_string(size - 4) + " bytes, but its header (dim 64"),
            std::string::npos)
      << m.error().message;
  EXPECT_NE(m.error().message.find("truncated"), std::string::npos) << m.error().message;
  m = LlamaModel::load(longer);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("the header does not match the file"), std::string::npos) << m.error().message;

  const std::string tiny = (dir_ / "tiny.bin").string();
  std::ofstream(tiny) << "short";
  m = LlamaModel::load(tiny);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("too short for a llama2.c checkpoint header"), std::string::npos);

  int header[7] = {64, 172, 2, 3, 1, 256, 8};  // 64 is not a multiple of 3 heads
  const std::string bad = (dir_ / "bad.bin").string();
  std::ofstream(bad, std::ios::binary).write(reinterpret_cast<const char*>(header), sizeof header);
  m = LlamaModel::load(bad);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("not a llama2.c checkpoint: header dim 64 is not a multiple of n_heads 3"),
            std::string::npos)
      << m.error().message;

  m = LlamaModel::load((dir_ / "none.bin").string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("cannot open"), std::string::npos);
}

TEST_F(LlamaTest, ProblemsAreWhatTheDecoderResolves) {
  const LlamaConfig c = small_config();
  const auto problems = LlamaDecoder::problems(c, {.max_chunk = 8});
  auto has = [&](const std::string& op, const Bindings& dims) {
    return std::any_of(problems.begin(), problems.end(), [&](const auto& p) { return p.op == op && p.dims == dims; });
  };
  EXPECT_TRUE(has("llm/gemv", {{"N", 64}, {"K", 64}}));
  EXPECT_TRUE(has("llm/gemv", {{"N", 64 + 2 * 32}, {"K", 64}}));  // wq, wk, wv stacked
  EXPECT_TRUE(has("llm/gemv_swiglu", {{"N", 172}, {"K", 64}}));
  EXPECT_TRUE(has("llm/gemm_flat", {{"M", 8}, {"N", 32}, {"K", 64}}));
  EXPECT_TRUE(has("llm/gemv", {{"N", 64}, {"K", 172}}));
  EXPECT_TRUE(has("llm/gemv", {{"N", 256}, {"K", 64}}));
  EXPECT_TRUE(has("llm/gemm_flat", {{"M", 8}, {"N", 172}, {"K", 64}}));
  EXPECT_TRUE(has("llm/attn_prefill", {{"S", 8}, {"H", 4}, {"KVH", 2}, {"D", 16}}));
  EXPECT_TRUE(has("llm/lmhead_argmax", {{"V", 256}, {"K", 64}}));
  EXPECT_TRUE(has("llm/embedding", {{"M", 1}, {"V", 256}, {"D", 64}}));  // its ids are int(0, V - 1) at any V
  for (const auto& p : problems) {  // each one resolves
    auto k = library_->resolve(p.op, p.dims);
    EXPECT_TRUE(k.ok()) << p.op << ": " << k.error().message;
  }
}

TEST_F(LlamaTest, TokenizerRoundTrip) {
  const std::string path = (dir_ / "tok.bin").string();
  ASSERT_TRUE(LlamaTokenizer::write_synthetic(path, 400).ok());
  auto t = LlamaTokenizer::load(path, 400);
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto encoded = t->encode("the a!");
  ASSERT_TRUE(encoded.ok()) << encoded.error().message;
  const std::vector<int>& ids = *encoded;
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  std::string text;
  for (std::size_t i = 1; i < ids.size(); ++i) text += t->decode(ids[i - 1], ids[i]);
  EXPECT_EQ(text, "the a!");
  EXPECT_EQ(ids, (std::vector<int>{1, t->id(" the"), t->id(" a"), t->id("!")}));  // the dummy prefix merged in
  auto wrong = LlamaTokenizer::load(path, 500);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("truncated or corrupt at token 400"), std::string::npos);
}

}  // namespace
