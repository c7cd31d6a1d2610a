// What `kforge infer make-model` writes, read back by the rules of llama2.c's formats with a
// reader written here (not kforge's): the checkpoint's 7-int header and size, and the tokenizer's
// load, encode (dummy prefix, per-codepoint lookup, byte fallback, best-score merges) and decode,
// on arbitrary UTF-8 and on bytes that are no UTF-8; kforge's LlamaTokenizer must agree with it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "inference/llama.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

// llama2.c's tokenizer, from its rules: int32 max_token_length, then per token f32 score, int32
// len, len bytes; pieces are C strings, looked up by binary search in the vocabulary sorted by
// strcmp.
struct Llama2cTokenizer {
  int max_token_length = 0;
  std::vector<std::string> vocab;
  std::vector<float> scores;
  std::vector<std::pair<std::string, int>> sorted;

  // Empty on success, else why the file is not one (what llama2.c's reader would fail on).
  std::string load(const std::string& path, int vocab_size) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "cannot open";
    auto read_int = [&](void* out) { return static_cast<bool>(in.read(static_cast<char*>(out), 4)); };
    if (!read_int(&max_token_length)) return "no max_token_length";
    for (int i = 0; i < vocab_size; ++i) {
      float score = 0;
      std::int32_t len = 0;
      if (!read_int(&score) || !read_int(&len)) return "short at token " + std::to_string(i);
      // llama2.c's fread(piece, len, 1) reads no item for len 0 and fails.
      if (len <= 0) return "token " + std::to_string(i) + " has length " + std::to_string(len);
      std::string piece(static_cast<std::size_t>(len), '\0');
      if (!in.read(piece.data(), len)) return "short in token " + std::to_string(i);
      vocab.push_back(piece);
      scores.push_back(score);
    }
    if (in.peek() != std::char_traits<char>::eof()) return "bytes after the last token";
    for (int i = 0; i < vocab_size; ++i) sorted.emplace_back(vocab[static_cast<std::size_t>(i)], i);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return std::strcmp(a.first.c_str(), b.first.c_str()) < 0; });
    return "";
  }

  int lookup(const std::string& s) const {
    auto it = std::lower_bound(sorted.begin(), sorted.end(), s, [](const auto& entry, const std::string& key) {
      return std::strcmp(entry.first.c_str(), key.c_str()) < 0;
    });
    return it != sorted.end() && it->first == s ? it->second : -1;
  }

  // encode(text, bos = 1, eos = 0).
  std::vector<int> encode(const std::string& text) const {
    std::vector<int> tokens = {1};
    if (!text.empty()) tokens.push_back(lookup(" "));
    std::string codepoint;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) codepoint.clear();  // a lead byte or ASCII starts a codepoint
      codepoint += static_cast<char>(c);
      const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
      if ((next & 0xC0) == 0x80 && codepoint.size() < 4) continue;
      if (const int id = lookup(codepoint); id != -1) {
        tokens.push_back(id);
      } else {
        for (unsigned char b : codepoint) tokens.push_back(b + 3);
      }
      codepoint.clear();
    }
    for (int id : tokens)  // llama2.c would read out of bounds: the caller's range check reports it
      if (id < 0 || id >= static_cast<int>(vocab.size())) return tokens;
    for (;;) {
      float best_score = -1e10f;
      int best_id = -1, best_idx = -1;
      for (int i = 0; i + 1 < static_cast<int>(tokens.size()); ++i) {
        const std::string pair = vocab.at(static_cast<std::size_t>(tokens[static_cast<std::size_t>(i)])) +
                                 vocab.at(static_cast<std::size_t>(tokens[static_cast<std::size_t>(i) + 1]));
        const int id = lookup(pair);
        if (id != -1 && scores[static_cast<std::size_t>(id)] > best_score)
          best_score = scores[static_cast<std::size_t>(id)], best_id = id, best_idx = i;
      }
      if (best_idx == -1) break;
      tokens[static_cast<std::size_t>(best_idx)] = best_id;
      tokens.erase(tokens.begin() + best_idx + 1);
    }
    return tokens;
  }

  std::string decode(int previous, int token) const {
    std::string piece = vocab.at(static_cast<std::size_t>(token));
    if (previous == 1 && piece[0] == ' ') piece.erase(0, 1);
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    if (piece.size() == 6 && piece.starts_with("<0x") && hex(piece[3]) && hex(piece[4]) && piece[5] == '>')
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    return piece;
  }
};

class TokenizerLlama2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kforge-tok-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // make-model's tokenizer at `vocab_size`, read by both readers.
  void write_and_load(int vocab_size) {
    path_ = (dir_ / ("tok" + std::to_string(vocab_size) + ".bin")).string();
    Status s = LlamaTokenizer::write_synthetic(path_, vocab_size);
    ASSERT_TRUE(s.ok()) << s.error().message;
    reference_ = {};
    const std::string why = reference_.load(path_, vocab_size);
    ASSERT_EQ(why, "") << path_ << " does not load as llama2.c's tokenizer";
    auto ours = LlamaTokenizer::load(path_, vocab_size);
    ASSERT_TRUE(ours.ok()) << ours.error().message;
    ours_ = std::move(*ours);
  }

  // Both encode `text` alike, into ids in range that decode back to `text`.
  void expect_round_trip(const std::string& text) {
    const std::vector<int> ids = reference_.encode(text);
    const int vocab = static_cast<int>(reference_.vocab.size());
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    for (int id : ids) ASSERT_TRUE(id >= 0 && id < vocab) << "id " << id << " encoding \"" << text << "\"";
    std::string decoded;
    for (std::size_t i = 1; i < ids.size(); ++i) {
      decoded += reference_.decode(ids[i - 1], ids[i]);
      EXPECT_EQ(ours_->decode(ids[i - 1], ids[i]), reference_.decode(ids[i - 1], ids[i])) << "token " << ids[i];
    }
    EXPECT_EQ(decoded, text) << "vocab " << vocab;
    auto ours = ours_->encode(text);
    ASSERT_TRUE(ours.ok()) << ours.error().message;
    EXPECT_EQ(*ours, ids) << "\"" << text << "\" at vocab " << vocab;
  }

  std::vector<std::string> pieces(const std::vector<int>& ids) const {
    std::vector<std::string> out;
    for (int id : ids) out.push_back(reference_.vocab.at(static_cast<std::size_t>(id)));
    return out;
  }

  fs::path dir_;
  std::string path_;
  Llama2cTokenizer reference_;
  std::optional<LlamaTokenizer> ours_;
};

const int kVocabs[] = {260, 300, 512, 4096, 32000};

TEST_F(TokenizerLlama2cTest, WrittenFileHasTheFormatsPieces) {
  for (int vocab : kVocabs) {
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    ASSERT_NO_FATAL_FAILURE(write_and_load(vocab));
    const auto& v = reference_.vocab;
    ASSERT_EQ(static_cast<int>(v.size()), vocab);
    EXPECT_EQ(v[0], "<unk>");
    EXPECT_EQ(v[1], "\n<s>\n");
    EXPECT_EQ(v[2], "\n</s>\n");
    for (int b = 0; b < 256; ++b) {
      char want[8];
      std::snprintf(want, sizeof want, "<0x%02X>", b);
      EXPECT_EQ(v[static_cast<std::size_t>(b) + 3], want);
    }
    EXPECT_GE(reference_.lookup(" "), 259);  // the dummy prefix
    std::size_t longest = 0;
    for (const auto& piece : v) {
      EXPECT_EQ(piece.find('\0'), std::string::npos) << "a C string ends at a NUL";
      longest = std::max(longest, piece.size());
    }
    EXPECT_EQ(reference_.max_token_length, static_cast<int>(longest));  // its merge buffer is sized by it
    EXPECT_EQ(std::set<std::string>(v.begin(), v.end()).size(), v.size()) << "a duplicate piece";
    for (float s : reference_.scores) EXPECT_TRUE(std::isfinite(s));
  }
}

TEST_F(TokenizerLlama2cTest, EncodesAnyTextAndDecodesItBack) {
  const std::vector<std::string> texts = {
      "", "a", " ", "  ", "hello world", "Once upon a time there was a little girl named Lily.", " leading space",
      "two  spaces and a trailing one ", "tab\there\nnew line\r\n", "<0x41> <s> </s> <unk>",
      "caf\xc3\xa9 \xc3\xbc \xe2\x80\x94 \xe2\x80\x99quoted\xe2\x80\x9d \xe2\x80\xa6 \xe4\xb8\xad\xe6\x96\x87 "
      "\xf0\x9f\x98\x80",
      // Characters with no piece: byte fallback.
      "\xce\xb1\xce\xb2\xce\xb3 \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xf0\x9f\x8e\x89", "\xff\xfe\xfd",
      "\x80\x80\x80\x80\x80\x80", "\xe4\xb8", "x\xf0\x9f\x98\x80\x80\x80y", "\x01\x1f\x7f\x7e",
      "ending in a lead byte \xc3"};
  std::mt19937 rng(12345);
  const std::vector<std::string> alphabet = {
      "a",        "e",    "t",    " ",    "  ", ".", "\n", "Q", "\xc3\xa9", "\xe2\x80\x94", "\xf0\x9f\x98\x80",
      "\xce\xbb", "\x80", "\xff", " the", "ing"};
  for (int vocab : kVocabs) {
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    ASSERT_NO_FATAL_FAILURE(write_and_load(vocab));
    for (const auto& text : texts) expect_round_trip(text);
    for (int n = 0; n < 60; ++n) {
      std::string bytes, mixed;
      const int length = static_cast<int>(rng() % 40);
      for (int i = 0; i < length; ++i) bytes += static_cast<char>(1 + rng() % 255);  // any byte but NUL
      for (int i = 0; i < length; ++i) mixed += alphabet[rng() % alphabet.size()];
      expect_round_trip(bytes);
      expect_round_trip(mixed);
    }
  }
}

TEST_F(TokenizerLlama2cTest, MergesMakeWordsOfCharacters) {
  ASSERT_NO_FATAL_FAILURE(write_and_load(4096));
  const std::string text = "Once upon a time there was a little girl named Lily. Tim played with her dog!";
  EXPECT_EQ(
      pieces(reference_.encode(text)),
      (std::vector<std::string>{"\n<s>\n", " Once", " upon", " a", " time", " there", " was", " a", " little", " girl",
                                " named", " Lily", ".", " Tim", " played", " with", " her", " dog", "!"}));
  expect_round_trip(text);
  // Without the words' pieces (vocab 260 has " " alone), one token per character: no merge applies.
  ASSERT_NO_FATAL_FAILURE(write_and_load(260));
  EXPECT_EQ(reference_.encode("ab").size(), 4u);  // <s>, " ", <0x61>, <0x62>
}

TEST_F(TokenizerLlama2cTest, RefusesWhatLlama2cCannotRun) {
  const std::string path = (dir_ / "small.bin").string();
  Status s = LlamaTokenizer::write_synthetic(path, 259);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("at least 260 tokens"), std::string::npos) << s.error().message;

  // Hand-made files: 3 specials and "a", "b" (no " "); then " " but only some of the byte pieces.
  auto write = [&](const std::vector<std::string>& vocab) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    const std::int32_t max_length = 6;
    out.write(reinterpret_cast<const char*>(&max_length), 4);
    for (const auto& piece : vocab) {
      const float score = 0;
      const auto len = static_cast<std::int32_t>(piece.size());
      out.write(reinterpret_cast<const char*>(&score), 4);
      out.write(reinterpret_cast<const char*>(&len), 4);
      out.write(piece.data(), len);
    }
  };
  write({"<unk>", "\n<s>\n", "\n</s>\n", "a", "b"});
  auto t = LlamaTokenizer::load(path, 5);
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto ids = t->encode("ab");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.error().message.find("no \" \" piece"), std::string::npos) << ids.error().message;
  EXPECT_EQ(t->encode("")->size(), 1u);  // <s> alone: no dummy prefix to look up

  write({"<unk>", "\n<s>\n", "\n</s>\n", "<0x00>", "<0x01>", " ", "a"});
  t = LlamaTokenizer::load(path, 7);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t->encode("a"), (std::vector<int>{1, 5, 6}));
  ids = t->encode("\xc3\xa9");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.error().message.find("byte 0xC3 has no byte piece"), std::string::npos) << ids.error().message;
  ids = t->encode(std::string("a\0b", 3));
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.error().message.find("NUL"), std::string::npos) << ids.error().message;
}

// The checkpoint header llama2.c reads: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: a separate classifier), seq_len; then exactly the weights it maps.
TEST_F(TokenizerLlama2cTest, CheckpointIsLlama2cs) {
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared classifier" : "own classifier");
    const LlamaConfig c = {.dim = 64,
                           .hidden_dim = 172,
                           .n_layers = 2,
                           .n_heads = 4,
                           .n_kv_heads = 2,
                           .vocab_size = 300,
                           .seq_len = 32,
                           .shared_classifier = shared};
    const std::string path = (dir_ / "m.bin").string();
    Status s = write_synthetic_llama(path, c, 3);
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::int32_t header[7] = {};
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in.read(reinterpret_cast<char*>(header), sizeof header));
    EXPECT_EQ(std::vector<std::int32_t>(header, header + 7),
              (std::vector<std::int32_t>{64, 172, 2, 4, 2, shared ? 300 : -300, 32}));
    // llama2.c's weights: embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
    // freq_cis_real and _imag (seq_len * head_size / 2 each), then wcls when not shared.
    const std::int64_t d = 64, h = 172, l = 2, v = 300, head = 64 / 4, kv = head * 2, seq = 32;
    const std::int64_t floats = v * d + l * d + l * d * d + 2 * l * kv * d + l * d * d + l * d + 3 * l * h * d + d +
                                2 * seq * head / 2 + (shared ? 0 : v * d);
    EXPECT_EQ(static_cast<std::int64_t>(fs::file_size(path)), 28 + 4 * floats);
    auto model = LlamaModel::load(path);
    ASSERT_TRUE(model.ok()) << model.error().message;
    EXPECT_EQ(model->config().shared_classifier, shared);
  }
}

}  // namespace
