// common: the bottom layer every kforge component builds on.
//
// Expected failures (a compile error, a wrong answer, a bad task file, a locked database) are
// values, not exceptions: functions that can fail that way return Result<T>, whose Error names
// the kind of failure and carries one message that says which file, field or value is at fault.
// Exceptions and asserts are kept for bugs. This header also gathers the small shared tools:
// content hashing, whole-file reads and atomic writes, child processes with time limits, and
// integer expressions over symbols (see expr.hpp), which task shapes and kernel launch lines are
// written in.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kforge {

enum class ErrorKind {
  invalid_input,  // a malformed file, flag or value the user gave us
  io,             // a file or directory that cannot be read or written
  compile,        // a compiler rejected a source; the message is its log
  database,       // SQLite refused (locked, corrupt, newer schema)
  internal,       // a system call failed in a way the user cannot fix
};

struct Error {
  ErrorKind kind;
  std::string message;
};

// Result<T> holds a T or an Error. Result<void> is spelled Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}
  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};
using Status = Result<void>;

template <class... Args>
Error make_error(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  return Error{kind, fmt::format(format, std::forward<Args>(args)...)};
}

// Content hash (XXH3-128) of a byte string, as 32 lowercase hex digits.
std::string content_hash(std::string_view data);

// A child process's outcome: exactly one of exit_code / signal is meaningful unless timed_out.
struct ProcessResult {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved as written
};

// Runs argv[0] (looked up in PATH) in `cwd` with stdin closed, capturing its output. After
// `timeout_s` seconds the child's whole process group is killed. Fails only when the child
// cannot be started.
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& cwd, double timeout_s);

// Forks a child that runs `body` with the write end of a pipe, and collects what it writes
// there until it exits or `timeout_s` passes (then its process group is killed). In the child
// every other inherited descriptor but stdin/out/err is closed; it leaves with _exit(0) when
// `body` returns, _exit(4) if it throws, and dies with the parent. For work that may crash or
// hang: a segfault becomes ProcessResult::signal, an endless loop timed_out.
// `keep_fd`, when given, also reaches the child, as descriptor output_fd + 1.
Result<ProcessResult> run_in_child(const std::function<void(int output_fd)>& body, double timeout_s, int keep_fd = -1);

// "SIGSEGV", "SIGABRT", ... for a signal number.
std::string signal_name(int signal);

// Reads a whole file; an io Error names the path.
Result<std::string> read_file(const std::string& path);

enum class Durability {
  cache,    // a power loss may lose the new file (or leave it empty): for what can be made again
  durable,  // synced before and after the rename: for what would be lost or trusted corrupt
};
// Writes `bytes` to `path` through a temporary file beside it and a rename: a reader (or a process
// killed mid-write) sees the old file or the new one whole, never a part. On failure `path` is
// untouched, no temporary is left, and an io Error names the path.
Status write_file_atomically(const std::string& path, std::string_view bytes, Durability durability);

}  // namespace kforge
