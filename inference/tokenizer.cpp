// LlamaTokenizer: llama2.c's tokenizer.bin read, and written for synthetic models; the decode of
// a token and a greedy encode of a prompt.
#include "inference/llama.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>

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
    t.scores_.push_back(score);
    t.pieces_.emplace_back(d.data() + at, static_cast<std::size_t>(length));
    at += static_cast<std::size_t>(length);
  }
  if (at != d.size())
    return make_error(ErrorKind::invalid_input, "{}: holds more than the model's {} tokens", path, vocab_size);
  return t;
}

Status LlamaTokenizer::write_synthetic(const std::string& path, int vocab_size) {
  std::vector<std::string> pieces;
  for (int i = 0; i < vocab_size; ++i) {
    if (i < 3) {
      pieces.emplace_back(i == 0 ? "<unk>" : i == 1 ? "\n<s>\n" : "\n</s>\n");
    } else if (i < 259) {
      pieces.push_back(fmt::format("<0x{:02X}>", i - 3));
    } else {  // " a", " b", ..., " z", " aa", ...: a space then letters, as word pieces start
      std::string word;
      for (int n = i - 259; ; n = n / 26 - 1) {
        word.insert(word.begin(), static_cast<char>('a' + n % 26));
        if (n < 26) break;
      }
      pieces.push_back(" " + word);
    }
  }
  std::int32_t max_length = 0;
  for (const auto& p : pieces) max_length = std::max(max_length, static_cast<std::int32_t>(p.size()));
  std::string out(reinterpret_cast<const char*>(&max_length), 4);
  for (int i = 0; i < vocab_size; ++i) {
    const float score = -static_cast<float>(i);
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
  std::string piece = pieces_[static_cast<std::size_t>(token)];
  if (previous == 1 && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  unsigned byte = 0;
  if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return piece;
}

std::vector<int> LlamaTokenizer::encode(const std::string& text) const {
  std::map<std::string, int, std::less<>> ids;
  std::size_t longest = 1;
  for (int i = 3; i < size(); ++i) {
    const std::string& p = pieces_[static_cast<std::size_t>(i)];
    if (p.empty() || (p.size() == 6 && p.starts_with("<0x"))) continue;
    if (ids.emplace(p, i).second) longest = std::max(longest, p.size());
  }
  std::vector<int> out = {1};
  const std::string s = " " + text;  // llama2.c's dummy prefix
  for (std::size_t at = 0; at < s.size();) {
    int found = -1;
    std::size_t length = 0;
    for (std::size_t n = std::min(longest, s.size() - at); n > 0 && found < 0; --n)
      if (auto it = ids.find(std::string_view(s).substr(at, n)); it != ids.end()) found = it->second, length = n;
    if (found < 0) {  // byte fallback
      const int byte = static_cast<unsigned char>(s[at]);
      found = byte + 3 < size() ? byte + 3 : 0;
      length = 1;
    }
    out.push_back(found);
    at += length;
  }
  return out;
}

}  // namespace kforge
