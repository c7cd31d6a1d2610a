// Internal to compiler_bridge: the backend factories the registry calls, and the helpers the
// vendor backends share for loading their libraries at run time.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {

std::unique_ptr<Backend> make_cpu_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_null_backend(const CompileCache& cache);

// Opens the first library of `names` that dlopen finds; otherwise "<names> not found".
inline Result<SharedLibrary> open_first(const std::vector<std::string>& names) {
  std::string tried;
  for (const auto& name : names) {
    auto lib = SharedLibrary::open(name);
    if (lib) return lib;
    tried += (tried.empty() ? "" : ", ") + name;
  }
  return make_error(ErrorKind::io, "{} not found", tried);
}

// Points `fn` at the first of `symbols` that `lib` has: a newer driver's versioned name, then the older one.
template <class Fn>
Status bind_first(const SharedLibrary& lib, Fn& fn, const std::vector<const char*>& symbols) {
  Status status;
  for (const char* symbol : symbols) {
    auto address = lib.symbol(symbol);
    if (address) {
      fn = reinterpret_cast<Fn>(*address);
      return {};
    }
    status = address.error();
  }
  return status;
}

// Writes `bytes` to `path`, replacing it.
inline Status write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  out.close();
  if (!out) return make_error(ErrorKind::io, "{}: cannot write", path.string());
  return {};
}

// Points `fn` at `symbol` in `lib`.
template <class Fn>
Status bind(const SharedLibrary& lib, Fn& fn, const char* symbol) {
  auto address = lib.symbol(symbol);
  if (!address) return address.error();
  fn = reinterpret_cast<Fn>(*address);
  return {};
}

}  // namespace kforge
