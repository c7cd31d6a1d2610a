// What the fake vendor drivers (fake_cuda.cpp, fake_hip.cpp) share, and do not take from the
// vendor: the call log the test reads, the failures it injects, named handles that are checked
// when passed back, device memory kept in host memory (so copies and fills really move bytes),
// and the clock that recorded events read. Each fake library compiles its own copy (all of it
// has internal linkage), so the two fakes in one process keep separate logs.
//
// The control API every fake exports, for the test to dlsym from the library it loaded:
//   const char* fake_calls();                the calls since fake_reset(), one a line:
//                                            "call(inputs)[ -> outputs][ = error]"
//   void fake_reset();                       empties the log, clears failures, restarts the
//                                            handle numbers (stream1, mem1, ...) and the clock
//   void fake_fail(const char* call, int rc) makes `call` (its exported name) return rc from now
//                                            on, having done nothing; rc 0 undoes it
//   const char* fake_name(const void* p)     how the log names a handle or device address
//   int fake_live(const char* kind)          live "stream", "module", "event" or "mem"; for
//                                            "context", the primary contexts' retain count
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace fake {
namespace {

std::string log_text;
std::map<std::string, int, std::less<>> failures;
std::map<std::string, int, std::less<>> numbered;  // kind -> the last number given out

// A driver object. The vendor's handle types (CUstream, hipModule_t, ...) are pointers to
// incomplete structs, so a Handle* stands in for any of them.
struct Handle {
  std::string kind, name;
  std::string image;         // a module: the text it was loaded from
  Handle* module = nullptr;  // a function: its module
  int max_dynamic_shared = 0;
  double recorded_ms = -1;  // an event: when it was last recorded (-1: never)
  int device = 0, retains = 0;
};
std::set<Handle*> live;

// Device memory: base address -> (size, number). Addresses are real host memory, so a copy can
// be done with memcpy; the number names the allocation in the log ("mem3", "mem3+16").
struct Allocation {
  std::size_t bytes;
  int number;
};
std::map<std::uint64_t, Allocation> memory;

double clock_ms = 0;
// How far the clock moves per recorded event: a binary fraction, so elapsed times compare exactly.
constexpr double tick_ms = 1.25;

template <class T>
T make(std::string_view kind) {
  auto* h = new Handle;
  h->kind = kind;
  h->name = fmt::format("{}{}", kind, ++numbered[h->kind]);
  live.insert(h);
  return reinterpret_cast<T>(h);
}

// The live handle `p` if it is of `kind`, else null.
Handle* find(const void* p, std::string_view kind) {
  auto* h = static_cast<Handle*>(const_cast<void*>(p));
  return live.count(h) && h->kind == kind ? h : nullptr;
}

void destroy(Handle* h) {
  live.erase(h);
  delete h;
}

std::uint64_t allocate(std::size_t bytes) {
  auto* block = new unsigned char[bytes];
  const auto address = reinterpret_cast<std::uint64_t>(block);
  memory[address] = {bytes, ++numbered["mem"]};
  return address;
}

// The allocation holding [address, address + bytes), or memory.end().
std::map<std::uint64_t, Allocation>::iterator allocation_of(std::uint64_t address, std::size_t bytes) {
  auto it = memory.upper_bound(address);
  if (it == memory.begin()) return memory.end();
  --it;
  return address + bytes <= it->first + it->second.bytes ? it : memory.end();
}

bool release(std::uint64_t address) {
  auto it = memory.find(address);
  if (it == memory.end()) return false;
  delete[] reinterpret_cast<unsigned char*>(it->first);
  memory.erase(it);
  return true;
}

// "stream2", "mem3+16", "host" (an address outside device memory), "null".
std::string name(const void* p) {
  if (!p) return "null";
  if (auto* h = static_cast<Handle*>(const_cast<void*>(p)); live.count(h)) return h->name;
  const auto address = reinterpret_cast<std::uint64_t>(p);
  auto it = allocation_of(address, 1);
  if (it == memory.end()) return "host";
  const std::uint64_t offset = address - it->first;
  return offset ? fmt::format("mem{}+{}", it->second.number, offset) : fmt::format("mem{}", it->second.number);
}
[[maybe_unused]] std::string name(std::uint64_t address) {
  return name(reinterpret_cast<const void*>(address));
}

// One driver call: what it was given, the error it ends with, what it handed back. Its line is
// logged by done(), which returns the error as the vendor's result type.
template <class Result>
struct Call {
  Call(std::string_view call, std::string inputs) : name(call), args(std::move(inputs)) {
    if (auto it = failures.find(name); it != failures.end()) rc = it->second;
  }
  // Whether the call goes on: it fails with `error` unless `ok` (or it failed already).
  bool require(bool ok, int error) {
    if (rc == 0 && !ok) rc = error;
    return rc == 0;
  }
  Result done(std::string_view outputs = {}) {
    log_text += fmt::format("{}({})", name, args);
    if (rc == 0 && !outputs.empty()) log_text += fmt::format(" -> {}", outputs);
    if (rc != 0) log_text += fmt::format(" = {}", rc);
    log_text += "\n";
    return static_cast<Result>(rc);
  }
  std::string_view name;
  std::string args;
  int rc = 0;
};

// A loaded image's kernels: the words after "FAKE-IMAGE" on its first line.
bool has_kernel(const Handle& module, std::string_view kernel) {
  std::string_view first_line = std::string_view(module.image).substr(0, module.image.find('\n'));
  first_line.remove_prefix(std::string_view("FAKE-IMAGE").size());
  while (!first_line.empty()) {
    const auto start = first_line.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    first_line.remove_prefix(start);
    const auto word = first_line.substr(0, first_line.find(' '));
    if (word == kernel) return true;
    first_line.remove_prefix(word.size());
  }
  return false;
}

// An image's first line, for the log.
std::string image_head(const char* image) {
  const std::string_view text(image);
  return std::string(text.substr(0, text.find('\n')));
}

}  // namespace
}  // namespace fake

FAKE_EXPORT const char* fake_calls() {
  return fake::log_text.c_str();
}
FAKE_EXPORT void fake_reset() {
  fake::log_text.clear();
  fake::failures.clear();
  fake::numbered.clear();
  fake::clock_ms = 0;
}
FAKE_EXPORT void fake_fail(const char* call, int rc) {
  if (rc)
    fake::failures[call] = rc;
  else
    fake::failures.erase(call);
}
FAKE_EXPORT const char* fake_name(const void* p) {
  static std::string last;
  last = fake::name(p);
  return last.c_str();
}
FAKE_EXPORT int fake_live(const char* kind) {
  if (std::string_view(kind) == "mem") return static_cast<int>(fake::memory.size());
  int n = 0;
  for (auto* h : fake::live)
    if (h->kind == kind) n += h->kind == "context" ? h->retains : 1;
  return n;
}
