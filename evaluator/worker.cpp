// The worker process and the parent's handle on it: frames over a socket (the worker's stdin and
// stdout), the worker's stderr drained by the parent, restarts after a death or a hang.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxFrameBytes = size_t{256} << 20;  // a result with every mismatch of a huge tensor is far smaller
constexpr size_t kMaxCapturedOutput = 16 << 10;       // what a kernel prints, kept per evaluation

std::string frame(const std::string& payload) {
  return std::to_string(payload.size()) + "\n" + payload;
}

}  // namespace

Result<std::optional<std::string>> take_frame(std::string& buffer) {
  const size_t newline = buffer.find('\n');
  if (newline == std::string::npos) {
    if (buffer.size() > 20) return make_error(ErrorKind::internal, "malformed frame header");
    return std::optional<std::string>{};
  }
  size_t length = 0;
  for (size_t i = 0; i < newline; ++i) {
    if (buffer[i] < '0' || buffer[i] > '9' || length > kMaxFrameBytes)
      return make_error(ErrorKind::internal, "malformed frame header '{}'", buffer.substr(0, std::min<size_t>(newline, 20)));
    length = length * 10 + static_cast<size_t>(buffer[i] - '0');
  }
  if (newline == 0 || length > kMaxFrameBytes) return make_error(ErrorKind::internal, "malformed frame header");
  if (buffer.size() < newline + 1 + length) return std::optional<std::string>{};
  std::string payload = buffer.substr(newline + 1, length);
  buffer.erase(0, newline + 1 + length);
  return std::optional<std::string>{std::move(payload)};
}

namespace {

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    // send() on a socket, so a dead peer is EPIPE rather than a SIGPIPE that kills us.
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(ErrorKind::internal, "write: {}", std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

std::string this_program() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "kforge" : path.string();
}

}  // namespace

// ---- the worker ------------------------------------------------------------------------------

int worker_main(int in_fd, int out_fd) {
  // The answers leave through a descriptor of their own: a GPU kernel's printf, which the driver
  // writes to stdout inside this very process, must reach the captured stderr, never the channel.
  if (out_fd == STDOUT_FILENO) {
    out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 10);
    if (out_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) return 1;
  }
  std::string buffer;
  char chunk[65536];
  for (;;) {
    auto request = take_frame(buffer);
    if (!request) {
      fmt::print(stderr, "kforge worker: {}\n", request.error().message);
      return 2;
    }
    if (!*request) {
      ssize_t n = read(in_fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return 1;
      if (n == 0) return buffer.empty() ? 0 : 2;  // the parent is done (or cut a frame short)
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    nlohmann::json answer;
    auto parsed = nlohmann::json::parse(**request, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      answer = {{"error", "the request is not a JSON object"}};
    } else {
      answer = serve_request(parsed);
      if (parsed.contains("id")) answer["id"] = parsed["id"];  // which request this answers
    }
    if (!write_all(out_fd, frame(answer.dump()))) return 1;
    if (exit_after_answer) return 3;
  }
}

// ---- the parent's side ---------------------------------------------------------------------------

Worker::Worker(std::vector<std::string> command) : command_(std::move(command)) {
  if (command_.empty()) command_ = {this_program(), "worker"};
}

Worker::~Worker() {
  stop();
}

void Worker::stop() {
  for (int* fd : {&socket_, &stderr_})
    if (*fd >= 0) close(std::exchange(*fd, -1));
  if (pid_ <= 0) return;
  // Closing the socket ends an idle worker; a stuck one (or one past a call's deadline) goes by force.
  int status = 0;
  for (int i = 0; i < 20 && waitpid(pid_, &status, WNOHANG) == 0; ++i) usleep(5000);
  if (waitpid(pid_, &status, WNOHANG) == 0) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

Status Worker::start() {
  int sockets[2], err[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0)
    return make_error(ErrorKind::internal, "socketpair: {}", std::strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(sockets[0]), close(sockets[1]);
    return make_error(ErrorKind::internal, "pipe: {}", std::strerror(errno));
  }
  std::vector<char*> argv;
  for (auto& a : command_) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {sockets[0], sockets[1], err[0], err[1]}) close(fd);
    return make_error(ErrorKind::internal, "fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);  // its own group: killing it also kills the evaluation it is running
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(sockets[1], STDIN_FILENO);
    dup2(sockets[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close_range(3, ~0U, 0);  // nothing of ours (an open kernel library above all) reaches it
    // Nor our secrets: the kernels it runs could read its environment (LLM API keys, tokens).
    for (std::vector<std::string> names;;) {
      for (char** e = environ; e && *e; ++e) {
        std::string name(*e, std::strcspn(*e, "="));
        for (const char* secret : {"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"})
          if (name.find(secret) != std::string::npos) names.push_back(name);
      }
      if (names.empty()) break;
      for (const auto& name : names) unsetenv(name.c_str());
      names.clear();
    }
    execvp(argv[0], argv.data());
    dprintf(STDERR_FILENO, "cannot start the worker %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(sockets[1]);
  close(err[1]);
  pid_ = pid;
  socket_ = sockets[0];
  stderr_ = err[0];
  ++starts_;
  return {};
}

Result<nlohmann::json> Worker::call(const nlohmann::json& request, double timeout_s) {
  output_.clear();
  exit_code_ = -1;
  // One that died between calls (killed, out of memory) lost nothing: start a fresh one.
  if (pid_ > 0) {
    pollfd p{socket_, POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) stop();
  }
  if (pid_ <= 0)
    if (Status s = start(); !s) return s.error();
  const std::string command = command_.front();
  auto fail = [&](std::string why) -> Result<nlohmann::json> {
    stop();
    std::string tail = output_.size() > 400 ? output_.substr(output_.size() - 400) : output_;
    while (!tail.empty() && tail.back() == '\n') tail.pop_back();
    return make_error(ErrorKind::internal, "worker ({}): {}{}{}", command, why, tail.empty() ? "" : ": ", tail);
  };
  // It died: keep its last words (a failed exec says why), then say how it ended.
  auto how_it_ended = [&]() -> std::string {
    char rest[4096];
    pollfd err{stderr_, POLLIN, 0};
    while (poll(&err, 1, 100) > 0) {
      ssize_t m = read(stderr_, rest, sizeof rest);
      if (m <= 0) break;
      if (output_.size() < kMaxCapturedOutput)
        output_.append(rest, std::min(static_cast<size_t>(m), kMaxCapturedOutput - output_.size()));
    }
    int status = 0;
    for (int i = 0; i < 500; ++i, usleep(2000)) {  // up to 1 s: a loaded machine reaps slowly
      if (waitpid(pid_, &status, WNOHANG) != pid_) continue;
      pid_ = -1;  // reaped
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return WIFSIGNALED(status) ? "it was killed by " + signal_name(WTERMSIG(status))
                                 : fmt::format("it exited with code {}", WEXITSTATUS(status));
    }
    return "it closed its output";
  };
  auto drain_stderr = [&] {
    char rest[4096];
    pollfd err{stderr_, POLLIN, 0};
    while (poll(&err, 1, 0) > 0 && (err.revents & POLLIN)) {
      ssize_t m = read(stderr_, rest, sizeof rest);
      if (m <= 0) break;
      if (output_.size() < kMaxCapturedOutput)
        output_.append(rest, std::min(static_cast<size_t>(m), kMaxCapturedOutput - output_.size()));
    }
  };
  nlohmann::json tagged = request;
  tagged["id"] = ++requests_;
  if (!write_all(socket_, frame(tagged.dump()))) return fail(how_it_ended());

  const auto deadline = Clock::now() + std::chrono::duration<double>(std::max(0.0, std::min(timeout_s, 1e7)));
  std::string buffer;
  char chunk[65536];
  bool stderr_open = true;
  for (;;) {
    auto answer = take_frame(buffer);
    if (!answer) return fail(answer.error().message);
    if (*answer) {
      auto parsed = nlohmann::json::parse(**answer, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) return fail("it sent a malformed answer");
      if (parsed.value("id", std::uint64_t{0}) != requests_) return fail("it answered another request");
      drain_stderr();  // what the evaluation printed last belongs to it, not to the next one
      if (parsed.contains("error")) return make_error(ErrorKind::internal, "worker: {}", parsed["error"].get<std::string>());
      return parsed;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(fmt::format("no answer within {:g} s", timeout_s));
    pollfd fds[2] = {{socket_, POLLIN, 0}, {stderr_open ? stderr_ : -1, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000))) <= 0) continue;
    if (fds[1].revents) {
      ssize_t n = read(stderr_, chunk, sizeof chunk);
      if (n > 0 && output_.size() < kMaxCapturedOutput)
        output_.append(chunk, std::min(static_cast<size_t>(n), kMaxCapturedOutput - output_.size()));
      if (n == 0) stderr_open = false;
    }
    if (fds[0].revents) {
      ssize_t n = recv(socket_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(how_it_ended());
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }
}

}  // namespace kforge
