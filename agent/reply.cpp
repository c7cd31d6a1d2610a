// What comes back from the model: a kernel in a fenced block, or SEARCH/REPLACE blocks against
// the parent; and the prompt templates that go out.
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "agent/agent.hpp"

namespace kforge {
namespace {

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(start, end - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::string_view trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

std::string_view indentation(std::string_view s) { return s.substr(0, s.find_first_not_of(" \t")); }

// A run of at least five `c`, then (when `word` is given) optional spaces and `word`, then nothing.
bool marker(std::string_view line, char c, std::string_view word) {
  line = trim(line);
  size_t n = 0;
  while (n < line.size() && line[n] == c) ++n;
  if (n < 5) return false;
  return trim(line.substr(n)) == word;
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  return line.size() > 80 ? line.substr(0, 80) + "..." : line;
}

}  // namespace

Result<std::string> extract_kernel_source(std::string_view reply) {
  static const std::set<std::string> languages = {"", "cuda", "cu", "cpp", "c++", "cxx", "cc", "c", "hip"};
  struct Block {
    std::string text;
    bool has_entry;
  };
  std::vector<Block> blocks;
  const std::vector<std::string> lines = split_lines(reply);
  int skipped = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view open = trim(lines[i]);
    if (open.substr(0, 3) != "```") continue;
    const size_t info = open.find_first_not_of('`');
    std::string language(info == std::string_view::npos ? std::string_view() : trim(open.substr(info)));
    for (auto& ch : language) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string text;
    size_t j = i + 1;
    for (; j < lines.size() && trim(lines[j]).substr(0, 3) != "```"; ++j) text += lines[j] + "\n";
    if (languages.count(language))
      blocks.push_back({text, text.find("@kforge entry") != std::string::npos});
    else
      ++skipped;
    i = j;  // past the closing fence (or the end, for a reply cut short)
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it)
    if (it->has_entry) return it->text;
  if (!blocks.empty()) return blocks.back().text;
  return make_error(ErrorKind::invalid_input, "the reply has no fenced code block{}",
                    skipped ? fmt::format(" in C++/CUDA/HIP ({} in other languages)", skipped) : std::string());
}

Result<std::vector<DiffBlock>> parse_diff_blocks(std::string_view reply) {
  enum { outside, in_search, in_replace } state = outside;
  std::vector<DiffBlock> blocks;
  DiffBlock block;
  const std::vector<std::string> lines = split_lines(reply);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (state == outside) {
      if (marker(line, '<', "SEARCH")) {
        block = DiffBlock{};
        block.reply_line = static_cast<int>(i + 1);
        state = in_search;
      }
    } else if (state == in_search) {
      if (marker(line, '=', "")) {
        state = in_replace;
      } else if (marker(line, '>', "REPLACE") || marker(line, '<', "SEARCH")) {
        return make_error(ErrorKind::invalid_input, "diff block {} (reply line {}): no '=======' before line {}",
                          blocks.size() + 1, block.reply_line, i + 1);
      } else {
        block.search += line + "\n";
      }
    } else {
      if (marker(line, '>', "REPLACE")) {
        if (trim(block.search).empty())
          return make_error(ErrorKind::invalid_input, "diff block {} (reply line {}): its SEARCH part is empty",
                            blocks.size() + 1, block.reply_line);
        blocks.push_back(std::move(block));
        state = outside;
      } else if (marker(line, '<', "SEARCH")) {
        return make_error(ErrorKind::invalid_input, "diff block {} (reply line {}): no '>>>>>>> REPLACE' before line {}",
                          blocks.size() + 1, block.reply_line, i + 1);
      } else {
        block.replace += line + "\n";
      }
    }
  }
  if (state != outside)
    return make_error(ErrorKind::invalid_input, "diff block {} (reply line {}): not terminated by '>>>>>>> REPLACE'",
                      blocks.size() + 1, block.reply_line);
  if (blocks.empty())
    return make_error(ErrorKind::invalid_input,
                      "the reply has no '<<<<<<< SEARCH' / '=======' / '>>>>>>> REPLACE' block");
  return blocks;
}

Result<std::string> apply_diff_blocks(std::string_view source, const std::vector<DiffBlock>& blocks) {
  std::string text(source);
  for (size_t b = 0; b < blocks.size(); ++b) {
    const DiffBlock& block = blocks[b];
    size_t at = text.find(block.search);
    while (at != std::string::npos && at > 0 && text[at - 1] != '\n') at = text.find(block.search, at + 1);
    if (at != std::string::npos) {  // exactly, from the start of a line
      text.replace(at, block.search.size(), block.replace);
      continue;
    }
    // Line by line, ignoring indentation and trailing whitespace, and blank lines around the block.
    std::vector<std::string> search = split_lines(block.search);
    while (!search.empty() && trim(search.back()).empty()) search.pop_back();
    size_t first = 0;
    while (first < search.size() && trim(search[first]).empty()) ++first;
    search.erase(search.begin(), search.begin() + static_cast<std::ptrdiff_t>(first));
    const std::vector<std::string> lines = split_lines(text);
    size_t match = std::string::npos;
    for (size_t i = 0; !search.empty() && i + search.size() <= lines.size() && match == std::string::npos; ++i) {
      bool same = true;
      for (size_t j = 0; j < search.size() && same; ++j) same = trim(lines[i + j]) == trim(search[j]);
      if (same) match = i;
    }
    if (match == std::string::npos)
      return make_error(ErrorKind::invalid_input,
                        "diff block {} of {} (reply line {}) does not apply: its SEARCH text is not in the source{}, "
                        "not even ignoring indentation; it begins '{}'",
                        b + 1, blocks.size(), block.reply_line, b ? " as the blocks before it left it" : "",
                        first_line(std::string(trim(search.empty() ? block.search : search.front()))));
    // The replacement moves to the matched lines' indentation.
    const std::string from(indentation(search.front())), to(indentation(lines[match]));
    std::string replacement;
    for (const std::string& line : split_lines(block.replace)) {
      if (trim(line).empty())
        replacement += "\n";
      else if (line.compare(0, from.size(), from) == 0)
        replacement += to + line.substr(from.size()) + "\n";
      else
        replacement += line + "\n";
    }
    std::string rebuilt;
    for (size_t i = 0; i < match; ++i) rebuilt += lines[i] + "\n";
    rebuilt += replacement;
    for (size_t i = match + search.size(); i < lines.size(); ++i) rebuilt += lines[i] + "\n";
    if (!text.empty() && text.back() != '\n' && !rebuilt.empty()) rebuilt.pop_back();
    text = std::move(rebuilt);
  }
  return text;
}

Result<std::string> render_template(std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  std::vector<std::string> missing;
  size_t at = 0;
  while (true) {
    const size_t open = text.find("{{", at);
    if (open == std::string_view::npos) break;
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    const std::string_view name = trim(text.substr(open + 2, close - open - 2));
    const bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                            name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
                                std::string_view::npos;
    if (!identifier) {  // braces of code in a template: left as they are
      out += text.substr(at, open + 2 - at);
      at = open + 2;
      continue;
    }
    out += text.substr(at, open - at);
    if (auto it = values.find(std::string(name)); it != values.end()) {
      out += it->second;
    } else {
      const auto line = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(open), '\n') + 1;
      missing.push_back(fmt::format("{{{{{}}}}} (line {})", name, line));
    }
    at = close + 2;
  }
  out += text.substr(at);
  if (!missing.empty())
    return make_error(ErrorKind::invalid_input, "no value for placeholder{} {}", missing.size() > 1 ? "s" : "",
                      fmt::join(missing, ", "));
  return out;
}

Result<std::string> render_prompt(const std::string& prompts_dir, const std::string& name,
                                  const std::map<std::string, std::string>& values) {
  const std::string path = prompts_dir + "/" + name;
  auto text = read_file(path);
  if (!text) return text.error();
  auto rendered = render_template(*text, values);
  if (!rendered) return make_error(ErrorKind::invalid_input, "{}: {}", path, rendered.error().message);
  return rendered;
}

}  // namespace kforge
