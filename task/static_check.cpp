// The static pass: constructs a CPU kernel has no business using, refused before compiling
// with a reason the search's LLM can act on. It reads the source as text, so it is a first
// line of defence; the sandbox behind it enforces the same limits at run time.
#include <cctype>

#include "task/task.hpp"

namespace kforge {
namespace {

struct Rule {
  const char* token;   // an identifier (also spelled around, see core), a prefix ending in '_', or, with a '/' or ':', a substring
  const char* reason;  // why a kernel may not use it
};

const Rule kRules[] = {
    {"fork", "starts processes"},          {"vfork", "starts processes"},
    {"execve", "starts programs"},         {"execv", "starts programs"},
    {"execvp", "starts programs"},         {"execl", "starts programs"},
    {"execlp", "starts programs"},         {"system", "starts programs"},
    {"popen", "starts programs"},          {"posix_spawn", "starts programs"},
    {"pthread_create", "starts threads that outlive the call; use OpenMP"},
    {"std::thread", "starts threads that outlive the call; use OpenMP"},
    {"std::jthread", "starts threads that outlive the call; use OpenMP"},
    {"std::async", "starts threads that outlive the call; use OpenMP"},
    {"dlopen", "loads code"},              {"dlsym", "looks up symbols at run time"},
    {"syscall", "makes raw system calls"}, {"ptrace", "inspects processes"},
    {"mprotect", "changes memory protection"},
    {"mmap", "maps memory itself; allocate with new/malloc"},
    {"socket", "uses the network"},        {"connect", "uses the network"},
    {"kill", "sends signals"},             {"raise", "sends signals"},
    {"signal", "handles signals"},         {"sigaction", "handles signals"},
    {"setjmp", "jumps across calls"},      {"longjmp", "jumps across calls"},
    {"clock_gettime", "reads timers"},     {"gettimeofday", "reads timers"},
    {"std::chrono", "reads timers"},       {"rdtsc", "reads timers"},
    {"__rdtsc", "reads timers"},           {"getenv", "reads the environment"},
    {"fopen", "opens files"},              {"ofstream", "opens files"},
    {"ifstream", "opens files"},           {"fstream", "opens files"},
    {"asm", "uses inline assembly; use intrinsics"},
    {"__asm__", "uses inline assembly; use intrinsics"},
    {"__asm", "uses inline assembly; use intrinsics"},
    {"/proc/", "reads /proc"},             {"/dev/", "opens devices"},
    {"clone", "starts processes or threads; use OpenMP"},
    {"thrd_create", "starts threads that outlive the call; use OpenMP"},
    {"memfd_create", "makes code of its own"},
    {"userfaultfd", "handles page faults"},   {"perf_event_open", "reads performance counters"},
    {"bpf", "loads kernel programs"},        {"__NR_", "makes raw system calls"},
    {"SYS_", "makes raw system calls"},
};

// An identifier spelled around a refused one: underscores before it, a number or underscores
// after it (mmap64, __mmap, mmap2, __syscall, _Exit-style variants of the same call).
std::string_view core(std::string_view word) {
  while (!word.empty() && word.front() == '_') word.remove_prefix(1);
  while (!word.empty() && (word.back() == '_' || std::isdigit(static_cast<unsigned char>(word.back()))))
    word.remove_suffix(1);
  return word;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The source without comments and #include lines: a comment mentioning fork(), or including
// <signal.h> for its types, is no reason to refuse; using what they declare is.
std::string strip_comments(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    const bool line_start = i == 0 || source[i - 1] == '\n';
    if (source.compare(i, 2, "//") == 0 || (line_start && source.compare(i, 8, "#include") == 0)) {
      i = source.find('\n', i);
      if (i == std::string::npos) break;
      out += '\n';
    } else if (source.compare(i, 2, "/*") == 0) {
      size_t end = source.find("*/", i + 2);
      if (end == std::string::npos) break;
      i = end + 1;
      out += ' ';
    } else {
      out += source[i];
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> include_check(const std::string& source) {
  size_t line_number = 0;
  for (size_t start = 0; start < source.size(); ++line_number) {
    size_t end = source.find('\n', start);
    if (end == std::string::npos) end = source.size();
    std::string_view line(source.data() + start, end - start);
    start = end + 1;
    const size_t hash = line.find_first_not_of(" \t");
    if (hash == std::string_view::npos || line[hash] != '#') continue;
    const size_t word = line.find_first_not_of(" \t", hash + 1);
    if (word == std::string_view::npos || line.compare(word, 7, "include") != 0) continue;
    const size_t target = line.find_first_not_of(" \t", word + 7);
    const std::string_view rest = target == std::string_view::npos ? "" : line.substr(target);
    const size_t close = rest.find('>');
    const std::string_view name = rest.empty() || rest[0] != '<' || close == std::string_view::npos
                                      ? std::string_view{}
                                      : rest.substr(1, close - 1);
    // Library headers only (<cmath>, <immintrin.h>, <cuda_fp16.h>): a quoted or absolute path
    // could pour any file of this machine into the compiler's log, or block on a pipe.
    if (name.empty() || name.front() == '/' || name.find("..") != std::string_view::npos)
      return fmt::format("line {}: '{}' includes a file, not a library header: only #include <header> is allowed",
                         line_number + 1, std::string(line.substr(hash)));
  }
  return std::nullopt;
}

std::optional<std::string> static_check(const std::string& source) {
  if (auto reason = include_check(source)) return reason;
  const std::string code = strip_comments(source);
  auto refuse = [&](size_t at, std::string_view token, const char* reason) {
    size_t line = 1 + std::count(code.begin(), code.begin() + static_cast<long>(at), '\n');
    return fmt::format("line {}: '{}' {}: a kernel computes its outputs from its inputs and nothing else", line, token,
                       reason);
  };
  // Whole identifiers first, each also under its spelled-around forms.
  for (size_t at = 0; at < code.size();) {
    if (!word_char(code[at]) || (at > 0 && word_char(code[at - 1]))) {
      ++at;
      continue;
    }
    size_t end = at;
    while (end < code.size() && word_char(code[end])) ++end;
    const std::string_view word(code.data() + at, end - at);
    const std::string_view stem = core(word);
    for (const Rule& rule : kRules) {
      const std::string_view token = rule.token;
      if (token.find_first_of("/:") != std::string_view::npos) continue;
      const bool match = token.back() == '_' ? word.starts_with(token)  // a prefix: __NR_mmap
                                             : word == token || (!stem.empty() && stem == core(token));
      if (match) return refuse(at, word, rule.reason);
    }
    at = end;
  }
  // Then the substrings: paths and qualified names.
  for (const Rule& rule : kRules) {
    const std::string token = rule.token;
    if (token.find_first_of("/:") == std::string::npos) continue;
    if (size_t at = code.find(token); at != std::string::npos) return refuse(at, token, rule.reason);
  }
  return std::nullopt;
}

}  // namespace kforge
