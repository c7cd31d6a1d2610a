// Internal to compiler_bridge: the backend factories the registry calls, and the helpers the
// vendor backends share for loading their libraries at run time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {

std::unique_ptr<Backend> make_cpu_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_cuda_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_hip_backend(const CompileCache& cache);
std::unique_ptr<Backend> make_null_backend();

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

// Points `fn` at `symbol` in `lib`.
template <class Fn>
Status bind(const SharedLibrary& lib, Fn& fn, const char* symbol) {
  auto address = lib.symbol(symbol);
  if (!address) return address.error();
  fn = reinterpret_cast<Fn>(*address);
  return {};
}

}  // namespace kforge
