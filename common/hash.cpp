#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/common.hpp"

namespace kforge {

std::string content_hash(std::string_view data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

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

}  // namespace kforge
