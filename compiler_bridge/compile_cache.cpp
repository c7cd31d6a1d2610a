#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiler_bridge/compiler_bridge.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

Status write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return make_error(ErrorKind::io, "{}: cannot write", path.string());
  return {};
}

}  // namespace

std::string default_cache_dir() {
  if (const char* dir = getenv("KFORGE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/kforge";
  if (const char* home = getenv("HOME"); home && *home) return std::string(home) + "/.cache/kforge";
  return "/tmp/kforge-cache";
}

Result<CompileCache> CompileCache::open(std::string dir) {
  if (dir.empty()) dir = default_cache_dir();
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "tmp", ec);
  if (ec || access((dir + "/tmp").c_str(), W_OK) != 0)
    return make_error(ErrorKind::io, "compile cache {}: not writable (set KFORGE_CACHE_DIR)", dir);
  CompileCache cache;
  cache.dir_ = std::move(dir);
  return cache;
}

std::optional<Binary> CompileCache::lookup(const std::string& backend, const std::string& key,
                                           const std::string& format) const {
  Binary binary;
  binary.backend = backend;
  binary.key = key;
  binary.format = format;
  binary.path = fmt::format("{}/{}/{}.{}", dir_, backend, key, format);
  std::error_code ec;
  const auto size = fs::file_size(binary.path, ec);
  if (ec) return std::nullopt;
  binary.size_bytes = static_cast<std::int64_t>(size);
  binary.cache_hit = true;
  if (auto log = read_file(fmt::format("{}/{}/{}.log", dir_, backend, key))) binary.log = *log;
  return binary;
}

Status CompileCache::store(Binary& binary, const std::string& file) const {
  const fs::path folder = fs::path(dir_) / binary.backend;
  std::error_code ec;
  fs::create_directories(folder, ec);
  binary.path = (folder / (binary.key + "." + binary.format)).string();
  binary.size_bytes = static_cast<std::int64_t>(fs::file_size(file, ec));
  // The log first, so that a binary in place always has its log; both by atomic rename, so a
  // concurrent compile of the same key leaves complete files whichever rename wins.
  const fs::path log_tmp = fs::path(file).string() + ".log";
  if (auto s = write_file(log_tmp, binary.log); !s) return s;
  fs::rename(log_tmp, folder / (binary.key + ".log"), ec);
  if (!ec) fs::rename(file, binary.path, ec);
  if (ec) return make_error(ErrorKind::io, "{}: cannot store in the compile cache: {}", binary.path, ec.message());
  return {};
}

Status CompileCache::store_bytes(Binary& binary, const std::string& bytes) const {
  auto scratch = make_scratch_dir();
  if (!scratch) return scratch.error();
  const std::string file = *scratch + "/binary";
  Status s = write_file(file, bytes);
  if (s) s = store(binary, file);
  std::error_code ec;
  fs::remove_all(*scratch, ec);
  return s;
}

Result<std::string> CompileCache::make_scratch_dir() const {
  std::string scratch = dir_ + "/tmp/build-XXXXXX";
  if (!mkdtemp(scratch.data())) return make_error(ErrorKind::io, "{}: cannot make a scratch directory", scratch);
  return scratch;
}

std::map<std::string, CompileCache::Usage> CompileCache::usage() const {
  std::map<std::string, Usage> out;
  std::error_code ec;
  for (const auto& folder : fs::directory_iterator(dir_, ec)) {
    if (!folder.is_directory() || folder.path().filename() == "tmp") continue;
    Usage& u = out[folder.path().filename().string()];
    for (const auto& file : fs::directory_iterator(folder.path(), ec)) {
      if (!file.is_regular_file() || file.path().extension() == ".log") continue;
      ++u.files;
      u.bytes += static_cast<std::int64_t>(file.file_size(ec));
    }
  }
  return out;
}

Status CompileCache::clear() const {
  // Only the backends' folders: the directory may be shared with other files (a mistaken
  // KFORGE_CACHE_DIR), and tmp/ may hold another process's compile in progress.
  std::error_code ec;
  for (const char* backend : {"cpu", "cuda", "hip", "null"}) {
    fs::remove_all(fs::path(dir_) / backend, ec);
    if (ec) return make_error(ErrorKind::io, "{}/{}: cannot remove: {}", dir_, backend, ec.message());
  }
  return {};
}

}  // namespace kforge
