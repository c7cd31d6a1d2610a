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
#include <map>
#include <utility>

#include "evaluator/internal.hpp"

namespace kforge {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxFrameBytes = size_t{256} << 20;  // a result with every mismatch of a huge tensor is far smaller
constexpr size_t kMaxCapturedOutput = 16 << 10;       // what a kernel prints, kept per evaluation
constexpr std::uintmax_t kInlineFileBytes = 1 << 20;  // a shipped file this small goes along before the worker asks

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

// ---- files shipped with a request ---------------------------------------------------------------
//
// A pool's worker may not see the coordinator's filesystem. Its requests then name their files by
// content hash: "shipped" lists the JSON pointers of the values that were paths, each now
// {"file": HASH} or, for a task folder, {"dir": "suite/name", "files": {RELATIVE_PATH: HASH}}; and
// "blobs" lists the hashes whose bytes follow the request, one raw frame each, in that order. The
// worker keeps what it receives in its own compile cache (received/), by hash, so nothing travels
// twice; it answers {"missing": [HASH, ...]} when a request names a file it does not have.

namespace {

bool is_hash(const nlohmann::json& value) {
  if (!value.is_string()) return false;
  const std::string& h = value.get_ref<const std::string&>();
  return h.size() == 32 && h.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A relative path of plain names only (nothing absolute, no "..").
bool is_plain_relative(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  for (const auto& part : std::filesystem::path(path))
    if (part == ".." || part == "." || part.empty()) return false;
  return true;
}

// Where this worker keeps what it received: received/ in its compile cache, created once.
Result<std::filesystem::path> received_store() {
  static Result<std::filesystem::path> store = []() -> Result<std::filesystem::path> {
    auto cache = CompileCache::open();
    if (!cache) return cache.error();
    const std::filesystem::path dir = std::filesystem::path(cache->dir()) / "received";
    std::error_code ec;
    std::filesystem::create_directories(dir / "dirs", ec);
    if (ec) return make_error(ErrorKind::internal, "{}: {}", dir.string(), ec.message());
    return dir;
  }();
  return store;
}

// Replaces each shipped value of `request` by the path of its copy here (a task folder is laid out
// from its files once); returns the hashes this worker lacks, or why the request is malformed.
Result<std::vector<std::string>> unpack_shipped(nlohmann::json& request, const std::filesystem::path& store) {
  std::vector<std::string> missing;
  const nlohmann::json& shipped = request["shipped"];
  if (!shipped.is_array()) return make_error(ErrorKind::invalid_input, "'shipped' is not a list");
  std::error_code ec;
  for (const auto& pointer : shipped) {
    if (!pointer.is_string()) return make_error(ErrorKind::invalid_input, "'shipped' holds a non-string");
    const nlohmann::json::json_pointer at(pointer.get<std::string>());  // throws json::parse_error: caught by the caller
    if (!request.contains(at) || !request[at].is_object())
      return make_error(ErrorKind::invalid_input, "shipped '{}' is not a file of the request", pointer.get<std::string>());
    nlohmann::json& value = request[at];
    if (is_hash(value.value("file", nlohmann::json()))) {
      const auto path = store / value["file"].get<std::string>();
      if (!std::filesystem::exists(path, ec)) missing.push_back(value["file"]);
      value = path.string();
      continue;
    }
    const nlohmann::json name = value.value("dir", nlohmann::json()), files = value.value("files", nlohmann::json());
    if (!name.is_string() || !is_plain_relative(name) || !files.is_object())
      return make_error(ErrorKind::invalid_input, "shipped '{}' is neither a file nor a folder", pointer.get<std::string>());
    const auto root = store / "dirs" / content_hash(value.dump());
    const auto folder = root / name.get<std::string>();
    value = folder.string();
    if (std::filesystem::exists(root, ec)) continue;
    const size_t before = missing.size();
    for (const auto& [relative, hash] : files.items()) {
      if (!is_plain_relative(relative) || !is_hash(hash))
        return make_error(ErrorKind::invalid_input, "shipped folder file '{}' is malformed", relative);
      if (!std::filesystem::exists(store / hash.get<std::string>(), ec)) missing.push_back(hash);
    }
    if (missing.size() > before) continue;
    // Laid out beside, then renamed into place: a folder that exists is whole.
    const auto partial = std::filesystem::path(root.string() + fmt::format(".{}.part", getpid()));
    std::filesystem::remove_all(partial, ec);
    for (const auto& [relative, hash] : files.items()) {
      const auto target = partial / name.get<std::string>() / relative;
      std::filesystem::create_directories(target.parent_path(), ec);
      if (!ec) std::filesystem::copy_file(store / hash.get<std::string>(), target, ec);
      if (ec) return make_error(ErrorKind::internal, "{}: {}", target.string(), ec.message());
    }
    if (rename(partial.c_str(), root.c_str()) != 0 && !std::filesystem::exists(root, ec))
      return make_error(ErrorKind::internal, "{}: {}", root.string(), std::strerror(errno));
    std::filesystem::remove_all(partial, ec);  // another worker's copy won the rename
  }
  return missing;
}

// The answer to one request whose "blobs" were received: its shipped files resolved, then served.
nlohmann::json serve_shipped(nlohmann::json request) {
  if (request.contains("shipped")) {
    auto store = received_store();
    if (!store) return {{"error", fmt::format("no store for received files: {}", store.error().message)}};
    Result<std::vector<std::string>> missing = std::vector<std::string>{};
    try {
      missing = unpack_shipped(request, *store);
    } catch (const nlohmann::json::exception& e) {
      missing = make_error(ErrorKind::invalid_input, "{}", e.what());
    }
    if (!missing) return {{"error", fmt::format("malformed shipped files: {}", missing.error().message)}};
    if (!missing->empty()) return {{"missing", *missing}};
  }
  return serve_request(request);
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
  bool closed = false;
  // The next frame, nothing once the parent is done.
  auto next_frame = [&]() -> Result<std::optional<std::string>> {
    for (;;) {
      auto frame = take_frame(buffer);
      if (!frame || *frame || closed) return frame;
      ssize_t n = read(in_fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return make_error(ErrorKind::internal, "read: {}", std::strerror(errno));
      if (n == 0) {
        closed = true;
        if (!buffer.empty()) return make_error(ErrorKind::internal, "the parent cut a frame short");
      }
      buffer.append(chunk, static_cast<size_t>(n));
    }
  };
  for (;;) {
    auto request = next_frame();
    if (!request) {
      fmt::print(stderr, "kforge worker: {}\n", request.error().message);
      return 2;
    }
    if (!*request) return 0;  // the parent is done
    nlohmann::json answer;
    auto parsed = nlohmann::json::parse(**request, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      answer = {{"error", "the request is not a JSON object"}};
    } else {
      // The files that follow the request, kept by hash; one we cannot read leaves us out of step.
      const nlohmann::json blobs = parsed.value("blobs", nlohmann::json::array());
      std::string trouble = blobs.is_array() ? "" : "'blobs' is not a list";
      for (size_t i = 0; trouble.empty() && i < blobs.size(); ++i) {
        auto bytes = next_frame();
        auto store = received_store();
        if (!bytes || !*bytes || !store || !is_hash(blobs[i]) || content_hash(**bytes) != blobs[i].get<std::string>())
          trouble = !bytes ? bytes.error().message
                    : !*bytes ? "the parent closed before its files"
                    : !store ? store.error().message
                             : fmt::format("file {} of {} is not the one named", i + 1, blobs.size());
        else if (const auto path = *store / blobs[i].get<std::string>(); !std::filesystem::exists(path))
          // Durable: a file in the store is trusted by its name from then on.
          if (Status kept = write_file_atomically(path, **bytes, Durability::durable); !kept)
            trouble = kept.error().message;
      }
      if (!trouble.empty()) {
        fmt::print(stderr, "kforge worker: the request's files: {}\n", trouble);
        answer = {{"error", "the request's files: " + trouble}};
        exit_after_answer = true;  // the frames after it may be out of step
      } else {
        answer = serve_shipped(parsed);
      }
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
  has_.clear();  // a fresh process: what it has is in its store, and it says what it lacks
  socket_ = sockets[0];
  stderr_ = err[0];
  ++starts_;
  return {};
}

Result<nlohmann::json> Worker::call(const nlohmann::json& request, double timeout_s,
                                    const std::vector<std::string>& files) {
  output_.clear();
  exit_code_ = -1;
  // One that died between calls (killed, out of memory) lost nothing: start a fresh one.
  if (pid_ > 0) {
    pollfd p{socket_, POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) stop();
  }
  if (pid_ <= 0)
    if (Status s = start(); !s) return s.error();
  if (!ship_ || files.empty()) return exchange(request, {}, timeout_s);

  auto packed = pack(request, files);
  if (!packed) return packed.error();
  auto& [shipped, paths] = *packed;
  // The bytes go along for what this worker process has not had yet, when small; a large file only
  // once the worker says it lacks it (its store outlives the process).
  std::vector<std::string> send;
  for (const auto& [hash, path] : paths) {
    std::error_code ec;
    if (!has_.count(hash) && std::filesystem::file_size(path, ec) <= kInlineFileBytes) send.push_back(hash);
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> bytes;
    for (const auto& hash : send) {
      auto content = read_file(paths.at(hash));
      if (!content) return content.error();
      bytes.push_back(std::move(*content));
    }
    shipped["blobs"] = send;
    auto answer = exchange(shipped, bytes, timeout_s);
    if (!answer || !answer->contains("missing")) {
      if (answer)
        for (const auto& [hash, path] : paths) has_.insert(hash);
      return answer;
    }
    send.clear();
    const nlohmann::json& missing = (*answer)["missing"];
    for (const auto& hash : missing.is_array() ? missing : nlohmann::json::array()) {
      if (!hash.is_string() || !paths.count(hash.get<std::string>())) {
        stop();
        return make_error(ErrorKind::internal, "worker ({}): it asked for a file it was not sent", command_.front());
      }
      send.push_back(hash);
    }
    if (send.empty()) break;
  }
  stop();
  return make_error(ErrorKind::internal, "worker ({}): it lacks the files it was sent", command_.front());
}

Result<std::pair<nlohmann::json, std::map<std::string, std::string>>> Worker::pack(
    const nlohmann::json& request, const std::vector<std::string>& files) {
  nlohmann::json shipped = request;
  std::map<std::string, std::string> paths;  // hash -> path here
  // Hashed once per path, size and time: the reference and baselines go with every request.
  auto hash_of = [&](const std::filesystem::path& path) -> Result<std::string> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto time = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
    if (ec) return make_error(ErrorKind::internal, "{}: {}", path.string(), ec.message());
    const std::string stamp = fmt::format("{}:{}", size, time);
    auto& [known_stamp, known_hash] = hashes_[path.string()];
    if (known_stamp != stamp) {
      auto content = read_file(path.string());
      if (!content) return content.error();
      known_stamp = stamp, known_hash = content_hash(*content);
    }
    paths[known_hash] = path.string();
    return known_hash;
  };
  nlohmann::json pointers = nlohmann::json::array();
  for (const auto& pointer : files) {
    const nlohmann::json::json_pointer at(pointer);
    if (!shipped.contains(at) || !shipped[at].is_string() || shipped[at].get<std::string>().empty()) continue;
    const std::filesystem::path path = std::filesystem::path(shipped[at].get<std::string>()).lexically_normal();
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      // A task folder, as suite/name: the worker loads it by its folder's names.
      const std::filesystem::path folder = path.has_filename() ? path : path.parent_path();
      nlohmann::json manifest = nlohmann::json::object();
      for (auto it = std::filesystem::recursive_directory_iterator(folder, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        auto hash = hash_of(it->path());
        if (!hash) return hash.error();
        manifest[std::filesystem::relative(it->path(), folder).string()] = *hash;
      }
      if (ec) return make_error(ErrorKind::internal, "{}: {}", folder.string(), ec.message());
      shipped[at] = {{"dir", (folder.parent_path().filename() / folder.filename()).string()}, {"files", manifest}};
    } else {
      auto hash = hash_of(path);
      if (!hash) return hash.error();
      shipped[at] = {{"file", *hash}};
    }
    pointers.push_back(pointer);
  }
  shipped["shipped"] = pointers;
  return std::pair{std::move(shipped), std::move(paths)};
}

Result<nlohmann::json> Worker::exchange(const nlohmann::json& request, const std::vector<std::string>& blobs,
                                        double timeout_s) {
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
  std::string frames = frame(tagged.dump());
  for (const auto& bytes : blobs) frames += frame(bytes);
  if (!write_all(socket_, frames)) return fail(how_it_ended());

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
      const nlohmann::json id = parsed.value("id", nlohmann::json());
      if (!id.is_number_unsigned() || integer<std::uint64_t>(id) != requests_) return fail("it answered another request");
      drain_stderr();  // what the evaluation printed last belongs to it, not to the next one
      if (parsed.contains("error"))
        return make_error(ErrorKind::internal, "worker: {}",
                          parsed["error"].is_string() ? parsed["error"].get<std::string>() : parsed["error"].dump());
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
