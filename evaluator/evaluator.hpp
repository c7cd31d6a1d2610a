// evaluator: decides whether a candidate kernel is correct, and how fast it is.
//
// Given a task (the task component), the evaluator compiles the task's reference and the
// candidate, each through the compiler_bridge with the glue the task component generates; then
// hands them to a worker process (`kforge worker`, reused across candidates, restarted when it
// dies or hangs), which runs native code in a sandboxed child of its own so that a segfault or an
// endless loop only becomes a status. There both run on the same seeded random inputs, every
// output is compared elementwise (atol + rtol·|want|, NaN/Inf positions must match) from poisoned
// buffers, and the candidate is timed on the bench shapes interleaved with the task's baseline
// (warm-up, adaptive repeats, a pool of input sets, cache flush between calls, robust statistics).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "common/expr.hpp"
#include "compiler_bridge/compiler_bridge.hpp"
#include "kernels_db/kernels_db.hpp"
#include "task/task.hpp"

namespace kforge {

// ---- evaluation -------------------------------------------------------------------------------

enum class EvalStatus { ok, compile_error, incorrect, crash, timeout, runtime_error, rejected_cheat };
std::string to_string(EvalStatus status);

struct EvalOptions {
  double timeout_s = 180;         // the whole child evaluation
  std::uint64_t seed = 0;         // input seed; 0 draws one from the OS
  bool time_bench_shapes = true;  // false: correctness only
  double warmup_s = 0.025;        // and at least 3 calls
  int min_repeats = 10, max_repeats = 1000;
  double max_time_per_shape_s = 1.0;
  double target_relative_se = 0.005;  // stop once stderr(mean) < 0.5% of the median
  std::uint64_t memory_limit_bytes = std::uint64_t{16} << 30;  // the child's address space
  bool sandbox = true;  // rlimits and the seccomp filter around the child (tests/sandbox/)
  bool flush_cache = true;            // read 2x the last-level cache (at most 64 MiB) between calls
  // false: the baseline is timed only, its outputs not compared with the reference's (bench_memops'
  // memory twins, which move an op's bytes without computing it). A task's own baseline is checked.
  bool check_baseline = true;
};

// Confines the calling process (the evaluation child, before loading the kernels): rlimits on core
// files, open files, address space and CPU time, and an allow-list seccomp filter: computing,
// threads, reading files; anything else fails with EPERM, and what only an attack asks for
// (memfd_create, executable anonymous memory, userfaultfd, perf_event_open, bpf) kills the
// process with SIGSYS. Irreversible.
Status enter_sandbox(const EvalOptions& options);
// The second stage, once the kernels are loaded: no executable mapping any more (SIGSYS), on
// every thread of the process.
Status seal_sandbox();

struct TimingStats {
  int n = 0;
  double min_us = 0, median_us = 0, p20_us = 0, p80_us = 0, mean_us = 0, std_us = 0, cv = 0;
};

struct Mismatch {
  std::string tensor;
  std::int64_t index = 0;
  double got = 0, want = 0;
};

struct ShapeResult {
  Bindings dims;
  bool bench = false;     // a bench shape (timed) or a check shape
  bool held_out = false;  // the random shape the task does not list, drawn for this evaluation
  bool correct = false;
  double max_abs_error = 0, max_rel_error = 0;
  std::int64_t wrong_elements = 0;
  std::vector<Mismatch> mismatches;  // the first few
  std::optional<TimingStats> timing;
  std::optional<TimingStats> baseline_timing;  // the task's baseline, timed interleaved
  double speedup = 0;                          // baseline median / candidate median
  double gbps = 0, gflops = 0;  // from the task's byte and FLOP formulas, when timed
  double floor_us = 0;          // max(bytes / bandwidth, FLOPs / peak) on this machine (a GPU: measured bandwidth)
  double roofline_pct = 0;      // floor_us / median, in percent
};

struct EvalResult {
  EvalStatus status = EvalStatus::runtime_error;
  std::string message;  // one line saying why, for anything but ok
  std::string log;      // compiler log (full) for compile_error
  std::vector<ShapeResult> shapes;
  std::uint64_t seed = 0;
  std::string baseline;  // the kernel speedups are measured against ("cpu_naive.cpp")
  double speedup = 0;    // geometric mean over the bench shapes; 0 when untimed
  std::string output;    // what the kernel printed (the first 16 KiB), for its author
  bool verified = false;  // passed again in a fresh worker with a fresh seed (Evaluator::reverify)
  // What the compiler reported about the candidate's binary (GPU: registers, spills, static shared
  // memory; -1 where unknown, as on the cpu) and the binary's size; kept whenever the candidate
  // compiled, whatever failed after (no device, a crash): the search files kernels by them.
  ResourceUsage usage;
  std::int64_t code_bytes = 0;  // 0: it did not compile
  // Where it ran, when a pool of workers ran it (agent/worker_pool.hpp): the worker ("slurm#1@node7")
  // and its device key; empty: the evaluator's own worker, on the run's device.
  std::string worker, device;
  // The roof its % of roofline was measured against: the device's memory bandwidth (cpu: the
  // DRAM step of the read probe; GPU: the copy kernel) and FLOP peak; 0 where nothing was timed.
  double roof_gbps = 0, roof_gflops = 0;
};

nlohmann::json to_json(const EvalResult& result);
Result<EvalResult> eval_result_from_json(const nlohmann::json& j);

// ---- workers ----------------------------------------------------------------------------------
//
// Evaluations run in a worker process that reads requests and writes answers as frames
// ("<byte count>\n<JSON>") on its stdin and stdout; what kernels print goes to its stderr. A
// program that links the evaluator and keeps the default worker command answers `worker` as its
// first argument by calling worker_main() (kforge and the test programs do).

// Serves requests on `in_fd` until it closes, answering on `out_fd`; returns the exit code.
int worker_main(int in_fd = 0, int out_fd = 1);

// The parent's side of one worker: started on first use, reused across evaluations, started
// afresh after it dies, hangs or answers garbage. Not thread-safe.
class Worker {
 public:
  // How to start one, e.g. {"kforge", "worker"} or {"ssh", "gpu1", "kforge", "worker"}; empty:
  // this very program with the argument `worker`.
  explicit Worker(std::vector<std::string> command = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sends `request`, waits up to `timeout_s` for the answer. A worker that dies, hangs or answers
  // garbage is killed, and the error says so with the end of what it printed. `files`: the JSON
  // pointers of the request's values that are paths of files or folders (a task's) here, which
  // a worker that ships files receives by content instead (worker.cpp says how).
  Result<nlohmann::json> call(const nlohmann::json& request, double timeout_s,
                              const std::vector<std::string>& files = {});
  // Whether to send the files a request names rather than their paths: for a worker that may not
  // share this filesystem (a pool's). Each file travels once to a worker, which keeps it by hash.
  void ship_files(bool ship) { ship_ = ship; }
  // What the worker (and the kernels it ran) wrote to stderr during the last call, capped.
  const std::string& output() const { return output_; }
  // Ends the worker process; the next call starts a fresh one.
  void stop();
  // How many worker processes this handle has started.
  int starts() const { return starts_; }
  // How the last worker that died during a call ended: its exit code, -1 if killed or unknown.
  int exit_code() const { return exit_code_; }
  // Whether a worker process is up: false before the first call, and after a call that failed
  // (the worker died, hung or answered garbage, and was stopped).
  bool running() const { return pid_ > 0; }

 private:
  Status start();
  // `request` with the paths at `files` replaced by what they hold (hashes), and the paths by hash.
  Result<std::pair<nlohmann::json, std::map<std::string, std::string>>> pack(const nlohmann::json& request,
                                                                             const std::vector<std::string>& files);
  // One request, the bytes of its "blobs" after it, and its answer.
  Result<nlohmann::json> exchange(const nlohmann::json& request, const std::vector<std::string>& blobs,
                                  double timeout_s);
  std::vector<std::string> command_;
  bool ship_ = false;
  std::set<std::string> has_;  // the hashes of the files the running worker process has
  std::map<std::string, std::pair<std::string, std::string>> hashes_;  // path -> (size:time, hash)
  int pid_ = -1, socket_ = -1, stderr_ = -1, starts_ = 0, exit_code_ = -1;
  std::uint64_t requests_ = 0;  // each request's id; its answer must carry it back
  std::string output_;
};

// Holds a task with its compiled reference, and evaluates candidates against it in a worker.
class Evaluator {
 public:
  // Compiles the task's reference.cpp on the host, and its baseline for `backend`: on the cpu the
  // task's vendor kernel where this machine builds it, else the backend's naive seed
  // (conventions().baseline_seed) when present; either failing to compile is an error here.
  // Candidates are `backend`'s kernels (a GPU's run on its device 0), and evaluations go to
  // `worker` (shared by the evaluators of one run), or to a worker of its own when none is given.
  // `backend` must outlive the evaluator.
  static Result<Evaluator> create(Task task, const Backend& backend, std::shared_ptr<Worker> worker = nullptr);

  // Compiles `candidate` and runs the correctness and timing protocol in the worker. Every
  // failure of the candidate is a status in the result, never an Error.
  EvalResult evaluate(const Candidate& candidate, const std::string& file_name, const EvalOptions& options = {}) const;
  // The code hash (compiler_bridge's code_hash) of `candidate` compiled as evaluate() compiles it,
  // through the same cache; an error when it fails the static checks or does not compile.
  Result<std::string> code_hash(const Candidate& candidate, const std::string& file_name) const;

  // Before a result counts as a new best: `candidate` evaluated again in a fresh worker with a
  // fresh secret seed, twice when `first` claims more than 10x. Returns the first failure (its
  // message saying it came from re-verification), else the last run, marked verified.
  EvalResult reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                      EvalOptions options = {}) const;

  // Whether the task's reference computes from its inputs, run in the worker (sandboxed) on the
  // check shapes: its outputs must differ between two input draws, and change when any one input
  // tensor is drawn afresh. An invalid_input Error says which failed and names reference.cpp.
  Status check_reference() const;

  const Task& task() const { return task_; }
  const Backend& backend() const { return *backend_; }
  Worker& worker() const { return *worker_; }

  // Whether the worker compiles every binary itself, from the compile requests, with its own
  // backend and compile cache, rather than receiving them compiled here: for a worker whose
  // compile target (compile_target()) differs from this side's.
  void compile_on_worker(bool yes) { compile_on_worker_ = yes; }

 private:
  Evaluator(Task task, const Backend& backend, std::shared_ptr<const Backend> own_host, std::shared_ptr<Worker> worker)
      : task_(std::move(task)), backend_(&backend), own_host_(std::move(own_host)), worker_(std::move(worker)) {}
  // Compiles what host code is: backend_ itself on the cpu, else a cpu backend of the evaluator's own.
  const Backend& host() const { return own_host_ ? *own_host_ : *backend_; }
  Status compile_host_baseline();
  Status compile_device_baselines();
  Task task_;
  const Backend* backend_;                   // the candidates'
  std::shared_ptr<const Backend> own_host_;  // a cpu backend, when backend_ is a GPU's
  std::string baseline_name_;                // the baseline's file name
  std::shared_ptr<Worker> worker_;
  bool compile_on_worker_ = false;
  // The request's binaries, by their keys in it, as compiled here: the reference; on the cpu the
  // machine probe (it measures the machine for the physics floor) and the baseline (a vendor
  // kernel, or seeds/cpu_naive.cpp), by their paths; on a GPU the baseline (the naive seed), the
  // task's baseline.cuda (timed instead where the worker loads it) and the bandwidth probe
  // (compile_copy_probe), as the worker's request describes them.
  nlohmann::json compiled_here_ = nlohmann::json::object();
  // The same binaries as a worker that compiles for itself gets them: each a {"compile": ...} spec.
  nlohmann::json for_worker_compile_ = nlohmann::json::object();
  const nlohmann::json& binaries() const { return compile_on_worker_ ? for_worker_compile_ : compiled_here_; }
  // The eval request of `candidate`, as the worker's request names it, with binaries() and, for a
  // worker that compiles for itself, where its compile specs stand (the protocol: evaluator.md).
  nlohmann::json eval_request(const nlohmann::json& candidate, const EvalOptions& options, std::uint64_t seed) const;
  // Sends the request to the worker and reads its answer into `result`.
  EvalResult finish(const nlohmann::json& request, EvalResult result, const EvalOptions& options) const;
};

// What a worker must have to run the binaries compiled with `backend` here: its compile target
// (Backend::target()), and for a GPU backend the host's too (the reference and the baselines are
// host code). A worker whose compile target differs compiles for itself.
std::string compile_target(const Backend& backend);

// ---- records (records.cpp) --------------------------------------------------------------------

// The library's records of a kernel and of one evaluation of it on `device`.
KernelRecord kernel_record(const Task& task, const std::string& backend, const Candidate& candidate,
                           const std::string& origin, const std::string& run_id, const std::string& operator_name,
                           const std::string& parent_key = "");
EvaluationRecord evaluation_record(const Task& task, const std::string& device, const EvalResult& result,
                                   const std::string& run_id);

}  // namespace kforge
