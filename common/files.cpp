#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/common.hpp"

namespace kforge {

Result<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return make_error(ErrorKind::io, "{}: is a directory, not a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorKind::io, "{}: cannot open for reading", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error(ErrorKind::io, "{}: read failed", path);
  return text.str();
}

Status write_file_atomically(const std::string& path, std::string_view bytes, Durability durability) {
  // Beside the target, so the rename stays on one filesystem; named per process and per call, so
  // concurrent writers (processes or threads) never share one.
  static std::atomic<unsigned> calls{0};
  const std::string temporary = fmt::format("{}.{}.{}.tmp", path, getpid(), calls++);
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return make_error(ErrorKind::io, "{}: cannot write: {}", temporary, std::strerror(errno));
  const char* failed = nullptr;
  int error = 0;
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = "write", error = n < 0 ? errno : ENOSPC;
      break;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  // Without it, a power loss after the rename may leave the new name with no data behind it.
  if (!failed && durability == Durability::durable && fsync(fd) != 0) failed = "fsync", error = errno;
  if (close(fd) != 0 && !failed) failed = "write", error = errno;
  if (!failed && rename(temporary.c_str(), path.c_str()) != 0) failed = "rename", error = errno;
  if (failed) {
    unlink(temporary.c_str());
    return make_error(ErrorKind::io, "{}: {} failed: {}", path, failed, std::strerror(error));
  }
  // The rename lives in the directory. Best effort: the file is in place already, and some
  // filesystems cannot sync a directory.
  if (durability == Durability::durable) {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    if (const int dir_fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
      fsync(dir_fd);
      close(dir_fd);
    }
  }
  return {};
}

}  // namespace kforge
