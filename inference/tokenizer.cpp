// LlamaTokenizer: llama2.c's tokenizer.bin read, and written for synthetic models; llama2.c's
// encode (dummy prefix, per-codepoint lookup, byte fallback, best-score pair merges) and decode.
#include "inference/llama.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

namespace kforge {

Result<LlamaTokenizer> LlamaTokenizer::load(const std::string& path, int vocab_size) {
  auto data = read_file(path);
  if (!data) return data.error();
  const std::string& d = *data;
  std::size_t at = 0;
  auto take = [&](void* out, std::size_t n) {
    if (at + n > d.size()) return false;
    std::memcpy(out, d.data() + at, n);
    at += n;
    return true;
  };
  std::int32_t max_length = 0;
  if (!take(&max_length, 4)) return make_error(ErrorKind::invalid_input, "{}: too short for a tokenizer", path);
  LlamaTokenizer t;
  for (int i = 0; i < vocab_size; ++i) {
    float score = 0;
    std::int32_t length = 0;
    if (!take(&score, 4) || !take(&length, 4) || length < 0 || length > max_length || at + static_cast<std::size_t>(length) > d.size())
      return make_error(ErrorKind::invalid_input, "{}: truncated or corrupt at token {} (the model has {} tokens)", path,
                        i, vocab_size);
    // llama2.c keeps each piece as a C string: a NUL inside ends it there.
    std::string piece(d.data() + at, static_cast<std::size_t>(length));
    if (const auto nul = piece.find('\0'); nul != std::string::npos) piece.resize(nul);
    t.scores_.push_back(score);
    t.pieces_.push_back(std::move(piece));
    at += static_cast<std::size_t>(length);
  }
  if (at != d.size())
    return make_error(ErrorKind::invalid_input, "{}: holds more than the model's {} tokens", path, vocab_size);
  for (int i = 0; i < vocab_size; ++i) t.ids_.emplace(t.pieces_[static_cast<std::size_t>(i)], i);  // the lowest id wins
  return t;
}

namespace {

// The synthetic vocabulary after the specials and the byte pieces: " " (the dummy prefix), the
// printable ASCII characters and a few other codepoints (each found whole by the encoder), then
// pieces reached by merges: words of short stories, each after the chain of its prefixes (" t",
// " th", " the") so that every one is the merge of two earlier pieces, then " " + a, b, ..., z,
// aa, ab, ... up to the vocabulary's size. A lower id has the higher score: it merges first.
std::vector<std::string> synthetic_pieces(int vocab_size) {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};  // as llama2.c's export writes them
  for (int b = 0; b < 256; ++b) pieces.push_back(fmt::format("<0x{:02X}>", b));
  std::set<std::string> seen(pieces.begin(), pieces.end());
  auto add = [&](const std::string& piece) {
    if (static_cast<int>(pieces.size()) < vocab_size && seen.insert(piece).second) pieces.push_back(piece);
  };
  add(" ");
  for (char c = '!'; c <= '~'; ++c) add(std::string(1, c));
  for (const char* c : {"é", "è", "ü", "ñ", "—", "’", "“", "”", "…", "€", "中", "😀"}) add(c);
  static const char* const words[] = {
      " the",  " and",  " a",     " to",       " was",    " he",     " she",  " it",     " of",    " in",
      " day",  " Once", " upon",  " time",     " there",  " little", " girl", " boy",    " named", " Lily",
      " Tim",  " big",  " happy", " play",     " played", " saw",    " said", " friend", " mom",   " sun",
      " tree", " dog",  " cat",   " very",     " with",   " her",    " his",  " they",   " had",   " wanted",
      " go",   " park", " fun",   " together", " loved",  "ed",      "ing",   "ly",      "er"};
  for (const std::string word : words)
    for (std::size_t n = 2; n <= word.size(); ++n) add(word.substr(0, n));
  // " " + the n-th word of lowercase letters in bijective base 26: all of one length before the
  // next, so each word's prefix comes before it.
  for (long long n = 0; static_cast<int>(pieces.size()) < vocab_size; ++n) {
    std::string word;
    for (long long k = n;; k = k / 26 - 1) {
      word.insert(word.begin(), static_cast<char>('a' + k % 26));
      if (k < 26) break;
    }
    add(" " + word);
  }
  return pieces;
}

}  // namespace

Status LlamaTokenizer::write_synthetic(const std::string& path, int vocab_size) {
  if (vocab_size < kMinVocab)
    return make_error(ErrorKind::invalid_input,
                      "vocab {}: a llama2.c tokenizer needs at least {} tokens (<unk>, <s>, </s>, the 256 byte "
                      "pieces <0x00>..<0xFF> of its byte fallback, and \" \" for its dummy prefix)",
                      vocab_size, kMinVocab);
  const std::vector<std::string> pieces = synthetic_pieces(vocab_size);
  std::int32_t max_length = 0;
  for (const auto& p : pieces) max_length = std::max(max_length, static_cast<std::int32_t>(p.size()));
  std::string out(reinterpret_cast<const char*>(&max_length), 4);
  for (int i = 0; i < vocab_size; ++i) {
    // 0 for the specials and bytes (as sentencepiece scores them), then falling with the id.
    const float score = i < 259 ? 0.0f : -static_cast<float>(i - 259);
    const auto length = static_cast<std::int32_t>(pieces[static_cast<std::size_t>(i)].size());
    out.append(reinterpret_cast<const char*>(&score), 4);
    out.append(reinterpret_cast<const char*>(&length), 4);
    out += pieces[static_cast<std::size_t>(i)];
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(ErrorKind::io, "{}: cannot open for writing: {}", path, std::strerror(errno));
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok) return make_error(ErrorKind::io, "{}: write failed", path);
  return {};
}

std::string LlamaTokenizer::decode(int previous, int token) const {
  if (token < 0 || token >= size()) return fmt::format("<{}>", token);
  const std::string& piece = pieces_[static_cast<std::size_t>(token)];
  // After <s> the leading space (the dummy prefix's) is dropped.
  const char* text = previous == 1 && !piece.empty() && piece[0] == ' ' ? piece.c_str() + 1 : piece.c_str();
  // A byte piece, <0xHH>, is its byte: the same test llama2.c makes.
  unsigned char byte = 0;
  if (std::sscanf(text, "<0x%02hhX>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return text;
}

int LlamaTokenizer::id(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  return it == ids_.end() ? -1 : it->second;
}

Result<std::vector<int>> LlamaTokenizer::encode(const std::string& text) const {
  if (text.find('\0') != std::string::npos)
    return make_error(ErrorKind::invalid_input, "text holds a NUL byte (llama2.c's encoder ends text there)");
  std::vector<int> tokens = {1};
  if (text.empty()) return tokens;  // no dummy prefix for empty text
  const int space = id(" ");
  if (space < 0)
    return make_error(ErrorKind::invalid_input, "the tokenizer has no \" \" piece for llama2.c's dummy prefix");
  tokens.push_back(space);
  // One codepoint at a time (a lead byte and up to 3 continuation bytes; stray continuation
  // bytes group the same way): its piece, else one byte token (id byte + 3) per byte.
  const auto continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
  for (std::size_t at = 0; at < text.size();) {
    std::size_t n = 1;
    while (n < 4 && at + n < text.size() && continuation(text[at + n])) ++n;
    const std::string_view codepoint(text.data() + at, n);
    if (const int found = id(codepoint); found >= 0) {
      tokens.push_back(found);
    } else {
      for (char c : codepoint) {
        const int byte = static_cast<unsigned char>(c);
        if (byte + 3 >= size())
          return make_error(ErrorKind::invalid_input,
                            "byte 0x{:02X} has no byte piece: the tokenizer's {} tokens end before id {} "
                            "(llama2.c's byte fallback: ids 3..258 are <0x00>..<0xFF>)",
                            byte, size(), byte + 3);
        tokens.push_back(byte + 3);
      }
    }
    at += n;
  }
  // Merge the adjacent pair whose concatenation is the best-scoring piece (the leftmost of equals;
  // only scores above -1e10 count), until no pair is a piece. <s> takes part, as in llama2.c.
  // merged[i]: the piece of tokens i and i + 1, or -1; a merge changes only its neighbours'.
  auto merge_of = [&](std::size_t i) {
    return id(pieces_[static_cast<std::size_t>(tokens[i])] + pieces_[static_cast<std::size_t>(tokens[i + 1])]);
  };
  std::vector<int> merged(tokens.size() - 1);
  for (std::size_t i = 0; i < merged.size(); ++i) merged[i] = merge_of(i);
  for (;;) {
    float best_score = -1e10f;
    std::size_t best_at = merged.size();
    for (std::size_t i = 0; i < merged.size(); ++i)
      if (merged[i] >= 0 && scores_[static_cast<std::size_t>(merged[i])] > best_score)
        best_score = scores_[static_cast<std::size_t>(merged[i])], best_at = i;
    if (best_at == merged.size()) break;
    tokens[best_at] = merged[best_at];
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best_at));
    if (best_at > 0) merged[best_at - 1] = merge_of(best_at - 1);
    if (best_at < merged.size()) merged[best_at] = merge_of(best_at);
  }
  return tokens;
}

}  // namespace kforge
