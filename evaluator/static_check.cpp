// The static pass: constructs a CPU kernel has no business using, refused before compiling
// with a reason the search's LLM can act on. It reads the source as text, so it is a first
// line of defence; the sandbox behind it enforces the same limits at run time.
#include <cctype>

#include "evaluator/evaluator.hpp"

namespace kforge {
namespace {

struct Rule {
  const char* token;   // an identifier (matched as a whole word) or, with a '/' or ':', a substring
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
};

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

std::optional<std::string> static_check(const std::string& source) {
  const std::string code = strip_comments(source);
  for (const Rule& rule : kRules) {
    const std::string token = rule.token;
    const bool substring = token.find_first_of("/:") != std::string::npos;
    for (size_t at = code.find(token); at != std::string::npos; at = code.find(token, at + 1)) {
      if (!substring && ((at > 0 && word_char(code[at - 1])) ||
                         (at + token.size() < code.size() && word_char(code[at + token.size()]))))
        continue;
      size_t line = 1 + std::count(code.begin(), code.begin() + static_cast<long>(at), '\n');
      return fmt::format("line {}: '{}' {}: a kernel computes its outputs from its inputs and nothing else", line,
                         token, rule.reason);
    }
  }
  return std::nullopt;
}

}  // namespace kforge
