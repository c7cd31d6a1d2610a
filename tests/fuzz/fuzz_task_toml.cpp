// load_task on a task folder whose task.toml is the fuzzer's input. The folder takes the name the
// file gives itself (when it is a plain name), so that a well-formed task loads; a task that loads
// is then used as the evaluator uses it: its shapes checked, its inputs' distributions bound, its
// trampoline and GPU signature written.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "task/task.hpp"

namespace fs = std::filesystem;

namespace {

fs::path root;  // a temporary folder: root/fuzz/<name>/{task.toml,reference.cpp,baseline.cpp}

void write(const fs::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary).write(text.data(), static_cast<std::streamsize>(text.size()));
}

void remove_root() {
  std::error_code ec;
  fs::remove_all(root, ec);
}

// The folder for a task.toml with a line `name = "NAME"`; "task" when it has none. (By hand:
// std::regex would recurse per character of a long input.)
fs::path folder_for(std::string_view toml) {
  auto skip_blanks = [](std::string_view& s) { s.remove_prefix(std::min(s.size(), s.find_first_not_of(" \t"))); };
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  std::string name = "task";
  for (size_t at = 0; at < toml.size();) {
    const size_t end_of_line = std::min(toml.find('\n', at), toml.size());
    std::string_view line = toml.substr(at, end_of_line - at);
    at = end_of_line + 1;
    if (line.substr(0, 4) != "name") continue;
    line.remove_prefix(4);
    skip_blanks(line);
    if (line.substr(0, 1) != "=") continue;
    line.remove_prefix(1);
    skip_blanks(line);
    const size_t close = line.find('"', 1);
    if (line.substr(0, 1) != "\"" || close == std::string_view::npos || close == 1 || close > 41) continue;
    const std::string_view value = line.substr(1, close - 1);
    if (std::all_of(value.begin(), value.end(), word)) {
      name = value;
      break;
    }
  }
  fs::path folder = root / "fuzz" / name;
  if (!fs::exists(folder)) {
    fs::create_directories(folder);
    write(folder / "reference.cpp", "extern \"C\" void reference() {}\n");
    write(folder / "baseline.cpp", "extern \"C\" void baseline() {}\n");
  }
  return folder;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kforge-fuzz-XXXXXX";
  if (!mkdtemp(pattern.data())) std::abort();
  root = pattern;
  std::atexit(remove_root);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view toml(reinterpret_cast<const char*>(data), size);
  const fs::path folder = folder_for(toml);
  write(folder / "task.toml", toml);
  auto task = kforge::load_task(folder.string());
  if (!task) return 0;
  for (const auto* shapes : {&task->bench_shapes, &task->check_shapes})
    for (const auto& dims : *shapes) {
      // The loader vouches for its shapes: none of these may find a problem.
      if (kforge::shape_problem(*task, dims) || kforge::range_problem(*task, dims)) std::abort();
      for (const auto& arg : task->args) (void)arg.dist.at(dims);
      (void)kforge::shape_label(dims);
    }
  (void)kforge::trampoline_source(*task, "kernel");
  (void)kforge::gpu_entry_declaration(*task, "kernel", true);
  (void)kforge::problem_dtype(*task);
  (void)kforge::problem_dynamic_dim(*task);
  return 0;
}
