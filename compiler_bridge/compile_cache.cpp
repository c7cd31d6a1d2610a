#include <elf.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <fstream>

#include "compiler_bridge/backends.hpp"

namespace fs = std::filesystem;

namespace kforge {

std::string default_cache_dir() {
  if (const char* dir = getenv("KFORGE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/kforge";
  if (const char* home = getenv("HOME"); home && *home) return std::string(home) + "/.cache/kforge";
  return "/tmp/kforge-cache";
}

namespace {

bool names_only(std::string_view section) {
  for (std::string_view prefix : {".symtab", ".strtab", ".shstrtab", ".comment", ".note.gnu.build-id", ".debug",
                                  ".gnu_debuglink", ".nv_debug"})
    if (section.starts_with(prefix)) return true;
  return false;
}

// The sections of a 64-bit little-endian ELF file that are code or data, with their names.
std::optional<std::string> elf_code(const std::string& file) {
  Elf64_Ehdr header;
  if (file.size() < sizeof header) return std::nullopt;
  std::memcpy(&header, file.data(), sizeof header);
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB ||
      header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shstrndx >= header.e_shnum ||
      header.e_shoff > file.size() || (file.size() - header.e_shoff) / sizeof(Elf64_Shdr) < header.e_shnum)
    return std::nullopt;
  auto section = [&](size_t i) {
    Elf64_Shdr s;
    std::memcpy(&s, file.data() + header.e_shoff + i * sizeof s, sizeof s);
    return s;
  };
  auto in_file = [&](const Elf64_Shdr& s) {
    return s.sh_type == SHT_NOBITS || (s.sh_offset <= file.size() && s.sh_size <= file.size() - s.sh_offset);
  };
  const Elf64_Shdr names = section(header.e_shstrndx);
  if (!in_file(names) || names.sh_type == SHT_NOBITS) return std::nullopt;
  std::string code;
  for (size_t i = 1; i < header.e_shnum; ++i) {
    const Elf64_Shdr s = section(i);
    if (!in_file(s) || s.sh_name >= names.sh_size) return std::nullopt;
    const char* start = file.data() + names.sh_offset + s.sh_name;
    const std::string name(start, strnlen(start, names.sh_size - s.sh_name));
    if (names_only(name)) continue;
    code += name + '\0' + std::to_string(s.sh_type) + '\0' + std::to_string(s.sh_size) + '\0';
    if (s.sh_type != SHT_NOBITS) code.append(file, s.sh_offset, s.sh_size);
  }
  return code;
}

}  // namespace

Result<std::string> code_hash(const Binary& binary) {
  auto file = read_file(binary.path);
  if (!file) return file.error();
  if (file->starts_with(ELFMAG)) {
    auto code = elf_code(*file);
    if (!code) return make_error(ErrorKind::invalid_input, "{}: a malformed ELF file", binary.path);
    return content_hash(*code);
  }
  std::string text;  // PTX and other text: without comment lines
  for (size_t start = 0; start < file->size();) {
    size_t end = file->find('\n', start);
    if (end == std::string::npos) end = file->size();
    const std::string_view line(file->data() + start, end - start);
    if (!line.starts_with("//")) text.append(line) += '\n';
    start = end + 1;
  }
  return content_hash(text);
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

CompileCache CompileCache::at(std::string dir) {
  CompileCache cache;
  cache.dir_ = dir.empty() ? default_cache_dir() : std::move(dir);
  return cache;
}

std::optional<Binary> CompileCache::lookup(const std::string& backend, const std::string& key,
                                           const std::string& format) const {
  const std::string path = fmt::format("{}/{}/{}.{}", dir_, backend, key, format);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return std::nullopt;
  auto log = read_file(fmt::format("{}/{}/{}.log", dir_, backend, key));
  return Binary{.backend = backend,
                .format = format,
                .path = path,
                .key = key,
                .log = log ? *log : "",
                .cache_hit = true,
                .size_bytes = static_cast<std::int64_t>(size)};
}

Result<Binary> CompileCache::get_or_build(const std::string& backend, const std::string& key, const std::string& format,
                                          const BuildFn& build) const {
  if (auto hit = lookup(backend, key, format)) return *hit;
  auto scratch = make_scratch_dir();
  if (!scratch) return scratch.error();
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{*scratch};
  const fs::path output = fs::path(*scratch) / ("kforge-output." + format);
  auto log = build(output.string());
  if (!log) return log.error();

  const fs::path folder = fs::path(dir_) / backend;
  Binary binary{
      .backend = backend, .format = format, .path = (folder / (key + "." + format)).string(), .key = key, .log = *log};
  std::error_code ec;
  binary.size_bytes = static_cast<std::int64_t>(fs::file_size(output, ec));
  if (ec) return make_error(ErrorKind::internal, "{}: the {} compiler wrote no binary", output.string(), backend);
  fs::create_directories(folder, ec);
  // The log first, so that a binary in place always has its log; both by atomic rename, so a
  // concurrent compile of the same key leaves complete files whichever rename wins.
  const fs::path log_tmp = fs::path(*scratch) / "kforge-output.log";
  if (auto s = write_file(log_tmp, binary.log); !s) return s.error();
  fs::rename(log_tmp, folder / (key + ".log"), ec);
  if (!ec) fs::rename(output, binary.path, ec);
  if (ec) return make_error(ErrorKind::io, "{}: cannot store in the compile cache: {}", binary.path, ec.message());
  return binary;
}

Result<std::string> CompileCache::make_scratch_dir() const {
  std::string scratch = dir_ + "/tmp/build-XXXXXX";
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "tmp", ec);
  if (ec || !mkdtemp(scratch.data()))
    return make_error(ErrorKind::io, "compile cache {}: not writable (set KFORGE_CACHE_DIR)", dir_);
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
  // Only the backends' folders and what a pool's worker received (evaluator/worker.cpp): the
  // directory may be shared with other files (a mistaken KFORGE_CACHE_DIR), and tmp/ may hold
  // another process's compile in progress.
  std::error_code ec;
  for (const char* backend : {"cpu", "cuda", "hip", "null", "received"}) {
    fs::remove_all(fs::path(dir_) / backend, ec);
    if (ec) return make_error(ErrorKind::io, "{}/{}: cannot remove: {}", dir_, backend, ec.message());
  }
  return {};
}

}  // namespace kforge
