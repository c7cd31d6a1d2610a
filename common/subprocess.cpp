#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include "common/common.hpp"

namespace kforge {
namespace {
constexpr int kChildOutputFd = 3;
}  // namespace

std::string signal_name(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signal);
}

Result<ProcessResult> run_in_child(const std::function<void(int output_fd)>& body, double timeout_s, int keep_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return make_error(ErrorKind::internal, "pipe: {}", std::strerror(errno));
  const pid_t parent = getpid();
  std::fflush(nullptr);  // or the child would write our buffered output a second time
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return make_error(ErrorKind::internal, "fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);  // own group, so a timeout also kills what the child started
    // Dies with us: if kforge is interrupted, an endless kernel must not keep spinning.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    close(fds[0]);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    // Only stdin/out/err and the result pipe survive: code run in the child must not reach the
    // parent's files (an open kernel library, above all).
    const int kept = keep_fd >= 0 ? fcntl(keep_fd, F_DUPFD, 10) : -1;  // out of dup2's way
    dup2(fds[1], kChildOutputFd);
    if (kept >= 0) dup2(kept, kChildOutputFd + 1);
    close_range(kChildOutputFd + (kept >= 0 ? 2 : 1), ~0U, 0);
    try {
      body(kChildOutputFd);
    } catch (const std::exception& e) {
      dprintf(STDERR_FILENO, "kforge child: %s\n", e.what());
      _exit(4);
    } catch (...) {
      _exit(4);
    }
    _exit(0);
  }
  setpgid(pid, pid);
  close(fds[1]);

  ProcessResult result;
  if (!(timeout_s > 0)) timeout_s = 0;  // also NaN
  timeout_s = std::min(timeout_s, 1e7);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buffer[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready <= 0) continue;  // EINTR or the deadline: the loop head decides
    ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every writer closed: the child has finished (or closed its output)
    result.output.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);

  // The output may close before the child exits (or the child may close it on purpose).
  int status = 0;
  while (!result.timed_out) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {  // e.g. SIGCHLD ignored: the child was reaped for us
      kill(-pid, SIGKILL);
      return make_error(ErrorKind::internal, "waitpid: {} (is SIGCHLD ignored?)", std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
    } else {
      usleep(1000);
    }
  }
  if (result.timed_out) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  } else {
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  }
  return result;
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& cwd, double timeout_s) {
  std::vector<char*> c_argv;
  for (const auto& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  return run_in_child(
      [&](int output_fd) {
        dup2(output_fd, STDOUT_FILENO);
        dup2(output_fd, STDERR_FILENO);
        if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
          dprintf(STDERR_FILENO, "chdir %s: %s\n", cwd.c_str(), std::strerror(errno));
          _exit(127);
        }
        execvp(c_argv[0], c_argv.data());
        dprintf(STDERR_FILENO, "cannot run %s: %s\n", c_argv[0], std::strerror(errno));
        _exit(127);
      },
      timeout_s);
}

}  // namespace kforge
