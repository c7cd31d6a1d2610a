// kforge devices, kforge compile, kforge cache: the compiler bridge from the command line.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>

#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"

namespace kforge::cli {
namespace {

std::string gib(std::int64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30)); }

nlohmann::json device_json(const DeviceInfo& d) {
  return {{"index", d.index},         {"name", d.name},         {"arch", d.arch},
          {"compute_units", d.compute_units}, {"memory_bytes", d.memory_bytes}, {"l2_bytes", d.l2_bytes},
          {"clock_khz", d.clock_khz}, {"memory_clock_khz", d.memory_clock_khz}, {"warp_size", d.warp_size}};
}

int run_devices(bool json) {
  // Listing compiles nothing, so an unwritable cache directory must not stop it.
  nlohmann::json out = nlohmann::json::array();
  for (const auto& backend : make_backends(CompileCache::at())) {
    if (backend->name() == "null") continue;  // a test fixture, not something to run on
    const Status compiler = backend->compiler_status();
    auto devices = backend->devices();
    if (json) {
      nlohmann::json entry = {{"backend", backend->name()},
                              {"available", devices.ok()},
                              {"compiler", compiler.ok() ? backend->compiler_version() : ""},
                              {"default_arch", compiler.ok() ? backend->default_arch() : ""},
                              {"devices", nlohmann::json::array()}};
      if (!devices) entry["reason"] = devices.error().message;
      if (!compiler) entry["compiler_reason"] = compiler.error().message;
      for (const auto& d : devices ? *devices : std::vector<DeviceInfo>{}) entry["devices"].push_back(device_json(d));
      out.push_back(entry);
      continue;
    }
    const std::string compiles = compiler ? fmt::format("compiles with {} (default arch {})", backend->compiler_version(),
                                                        backend->default_arch())
                                          : "cannot compile: " + compiler.error().message;
    if (!devices) {
      fmt::print("{}: unavailable: {}; {}\n", backend->name(), devices.error().message, compiles);
      continue;
    }
    fmt::print("{}: {}\n", backend->name(), compiles);
    for (const auto& d : *devices) {
      std::string line = fmt::format("  [{}] {}  {}  {} compute units  {} memory", d.index, d.name, d.arch,
                                     d.compute_units, gib(d.memory_bytes));
      if (d.l2_bytes) line += fmt::format("  L2 {} MiB", d.l2_bytes >> 20);
      if (d.clock_khz) line += fmt::format("  {} MHz", d.clock_khz / 1000);
      if (d.warp_size) line += fmt::format("  warp {}", d.warp_size);
      fmt::print("{}\n", line);
    }
  }
  if (json) fmt::print("{}\n", out.dump(2));
  return kExitOk;
}

struct CompileArgs {
  std::string backend = "cpu", arch, file, task;
  std::vector<std::string> params;
  bool json = false;
};

int run_compile(const Context& context, const CompileArgs& args) {
  auto cache = CompileCache::open();
  if (!cache) return report(cache.error());
  auto backend = make_backend(args.backend, *cache);
  if (!backend) return report(backend.error());
  if (auto s = (*backend)->compiler_status(); !s)
    return report(make_error(ErrorKind::invalid_input, "{}: cannot compile: {}", args.backend, s.error().message));
  auto source = read_file(args.file);
  if (!source) return report(source.error());
  auto candidate = parse_candidate(std::move(*source), args.file);
  if (!candidate) return report(candidate.error());

  CompileRequest request;
  request.file_name = std::filesystem::path(args.file).filename().string();
  request.arch = args.arch;
  request.defines = candidate->param_bindings();
  for (const auto& assignment : args.params) {  // --param NAME=VALUE, a declared param only
    const size_t eq = assignment.find('=');
    const std::string name = assignment.substr(0, eq);
    auto declared = std::find_if(candidate->params.begin(), candidate->params.end(),
                                 [&](const KernelParam& p) { return p.name == name; });
    if (eq == std::string::npos || declared == candidate->params.end())
      return report(make_error(ErrorKind::invalid_input, "--param {}: expected NAME=VALUE with a param the kernel declares",
                               assignment));
    std::int64_t value = 0;
    if (auto [end, ec] = std::from_chars(assignment.data() + eq + 1, assignment.data() + assignment.size(), value);
        ec != std::errc() || end != assignment.data() + assignment.size())
      return report(make_error(ErrorKind::invalid_input, "--param {}: the value is not an integer", assignment));
    if (!declared->choices.empty() &&
        std::find(declared->choices.begin(), declared->choices.end(), value) == declared->choices.end())
      return report(make_error(ErrorKind::invalid_input, "--param {}: {} is not one of the declared choices {}", name,
                               value, fmt::join(declared->choices, ",")));
    request.defines[name] = value;
  }
  request.source = candidate->source;
  if (!args.task.empty()) {  // the task's signature, so a mismatch is a compile error
    auto task = find_task(context.resolved_tasks_dir(), args.task);
    if (!task) return report(task.error());
    request.source += "\n#line 1 \"kforge-signature\"\n";
    request.source += (*backend)->conventions().runs_on_host()
                          ? trampoline_source(*task, candidate->entry)
                          : gpu_entry_declaration(*task, candidate->entry, candidate->workspace_bytes.has_value());
  }

  const auto start = std::chrono::steady_clock::now();
  auto binary = (*backend)->compile(request);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!binary && binary.error().kind != ErrorKind::compile) return report(binary.error());
  if (args.json) {
    nlohmann::json out = {{"status", binary ? "ok" : "compile_error"}, {"backend", args.backend}, {"compile_ms", ms}};
    if (binary) {
      out.update({{"arch", binary->arch}, {"format", binary->format}, {"path", binary->path},
                  {"size_bytes", binary->size_bytes}, {"cache_hit", binary->cache_hit}, {"log", binary->log},
                  {"registers", binary->usage.registers}, {"spill_bytes", binary->usage.spill_bytes},
                  {"shared_bytes", binary->usage.shared_bytes}});
    } else {
      out["log"] = binary.error().message;
    }
    fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return binary ? kExitOk : kExitKernelFailed;
  }
  if (!binary) {
    fmt::print("compile_error: {} for {}\n{}\n", args.file, args.backend, binary.error().message);
    return kExitKernelFailed;
  }
  std::string usage;
  if (binary->usage.registers >= 0)
    usage = fmt::format(", {} registers, {} spill bytes, {} bytes shared memory", binary->usage.registers,
                        binary->usage.spill_bytes, binary->usage.shared_bytes);
  fmt::print("ok: {} {} {}, {} bytes{} ({}, {:.0f} ms)\n{}\n", args.backend, binary->arch, binary->format,
             binary->size_bytes, usage, binary->cache_hit ? "cache hit" : "compiled", ms, binary->path);
  return kExitOk;
}

int run_cache(bool clear, bool json) {
  auto cache = CompileCache::open();
  if (!cache) return report(cache.error());
  if (clear) {
    if (auto s = cache->clear(); !s) return report(s.error());
    fmt::print("cleared {}\n", cache->dir());
    return kExitOk;
  }
  const auto usage = cache->usage();
  if (json) {
    nlohmann::json out = {{"dir", cache->dir()}, {"backends", nlohmann::json::object()}};
    for (const auto& [backend, u] : usage) out["backends"][backend] = {{"files", u.files}, {"bytes", u.bytes}};
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{}\n", cache->dir());
  std::int64_t files = 0, bytes = 0;
  for (const auto& [backend, u] : usage) {
    fmt::print("  {:<6} {:>6} binaries  {:>10.1f} KiB\n", backend, u.files, u.bytes / 1024.0);
    files += u.files, bytes += u.bytes;
  }
  fmt::print("  {:<6} {:>6} binaries  {:>10.1f} KiB\n", "total", files, bytes / 1024.0);
  return kExitOk;
}

}  // namespace

void add_backend_commands(CLI::App& app, Context& context) {
  auto* devices = app.add_subcommand("devices", "List every backend with its devices, or why it is unavailable");
  auto devices_json = std::make_shared<bool>(false);
  devices->add_flag("--json", *devices_json, "Print JSON");
  devices->callback([&context, devices_json] { context.run = [devices_json] { return run_devices(*devices_json); }; });

  auto args = std::make_shared<CompileArgs>();
  auto* compile = app.add_subcommand("compile", "Compile a kernel file for a backend; print the log, size and resource usage");
  compile->add_option("file", args->file, "Kernel source file")->required();
  compile->add_option("--backend", args->backend, "cpu, cuda or hip (default cpu)");
  compile->add_option("--arch", args->arch, "Target: sm_80, sm_90, sm_90a, compute_90, gfx90a, ... (default: the device's)");
  compile->add_option("--task", args->task, "Check the entry against this task's signature (SUITE/NAME)");
  compile->add_option("--param", args->params, "Override a declared param, NAME=VALUE (repeatable)");
  compile->add_flag("--json", args->json, "Print JSON");
  compile->callback([&context, args] { context.run = [&context, args] { return run_compile(context, *args); }; });

  auto* cache = app.add_subcommand("cache", "The compile cache ($KFORGE_CACHE_DIR, default ~/.cache/kforge)");
  cache->require_subcommand(1);
  auto cache_json = std::make_shared<bool>(false);
  auto* stats = cache->add_subcommand("stats", "Binaries and bytes per backend");
  stats->add_flag("--json", *cache_json, "Print JSON");
  stats->callback([&context, cache_json] { context.run = [cache_json] { return run_cache(false, *cache_json); }; });
  auto* clear = cache->add_subcommand("clear", "Delete every cached binary");
  clear->callback([&context] { context.run = [] { return run_cache(true, false); }; });
}

}  // namespace kforge::cli
