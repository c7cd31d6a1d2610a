// kernels_db: the SQLite kernel library: every kernel kforge evaluated, every measurement, and
// the published `best` table the inference core loads.
//
// A kernel is stored once under its content hash (task, backend, params, source), with the kernel
// it was derived from and the operator and run that made it. Each evaluation of it on a device
// (under a software env) adds one evaluation row and one measurement row per shape; a timed shape
// is a problem (op, op version, dtype, static dims, one dynamic dim). After every write, import or
// merge the store republishes `best`: per problem, device and env, the lowest median among
// measurements that passed, were re-verified and have enough samples. Rows whose env is no longer
// the device's newest stay, flagged stale.
//
// Every row has a natural key (content hashes, device "vendor:arch:units" or "cpu:<name>"), so the
// libraries of many machines merge without duplicates. Writes are one transaction each (BEGIN
// IMMEDIATE, WAL, busy timeout); the schema is versioned with PRAGMA user_version and numbered
// migrations; a file written by a newer kforge, or a corrupt one, is refused and left untouched.
// Readers (BestKernels) open read-only. It depends on common only: callers translate their
// results into the plain records below.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/common.hpp"

struct sqlite3;

namespace kforge {

struct KernelRecord {
  std::string key;      // kernel_key(task, backend, params_json, source)
  std::string task;     // the op it implements: "llm/rmsnorm"
  std::string backend;  // "cpu", "cuda", "hip"
  std::string entry;
  std::string source;
  std::string params_json;    // {"BLOCK":256}
  std::string origin;         // where it came from: a seed file name, a user file, ...
  std::string parent_key;     // the kernel it was derived from; empty for seeds and user files
  std::string operator_name;  // what derived it: "seed", "user", "llm_diff", "param_mutation", ...
  std::string run_id;         // the run that first stored it; empty outside a run
};

// The content hash a kernel is stored under (the same on every machine).
std::string kernel_key(const std::string& task, const std::string& backend, const std::string& params_json,
                       const std::string& source);

struct MeasurementRecord {
  std::string shape;  // "M=16,N=4096"
  bool bench = false;
  bool correct = false;
  double max_abs_error = 0, max_rel_error = 0;
  std::optional<int> n;  // timing, when the shape was timed
  double min_us = 0, median_us = 0, p20_us = 0, p80_us = 0, mean_us = 0, std_us = 0, cv = 0;
  double gbps = 0, gflops = 0;
  double baseline_median_us = 0, speedup = 0;  // 0: no baseline was timed
  double floor_us = 0, roofline_pct = 0;       // the physics floor and the % of it reached; 0: unknown
};

// A device class. The key names it: "cpu:<model name>" or "<vendor>:<arch>:<SM/CU count>", e.g.
// "nvidia:sm_90:132"; the other fields are parsed from it, and filled in by whoever knows more.
struct DeviceRecord {
  std::string key, vendor, arch;
  int units = 0;  // SMs or CUs; 0 for CPUs
  std::string name;
  std::int64_t memory_bytes = 0;
  double bandwidth_gbps = 0, peak_gflops = 0;  // measured; 0 when unknown
};
DeviceRecord parse_device_key(const std::string& key);

// The software a measurement depends on. Two measurements compare only under the same env.
struct EnvRecord {
  std::string driver, runtime, compiler, kforge_version;
  std::string key() const;  // content hash; "unknown" when every field is empty
};

struct RunRecord {
  std::string id;  // new_run_id()
  std::string kforge_version, command, seed, llm_models, host;
  std::string started_at, ended_at;  // assigned by the store when empty / by end_run
};
std::string new_run_id();

struct EvaluationRecord {
  std::int64_t id = 0;  // assigned by the store (local to one file)
  std::string key;      // assigned by the store: a hash that stays the same across merges
  std::string kernel_key;
  std::string device;  // a DeviceRecord key: "cpu:AMD EPYC 7B13"
  EnvRecord env;
  std::string run_id;
  std::string status;   // ok, compile_error, incorrect, crash, timeout, runtime_error, rejected_cheat
  std::string message;  // one line of feedback: why it failed, the first mismatch
  std::string log;      // compiler log
  std::string output;   // what the kernel printed
  double atol = 0, rtol = 0;
  std::uint64_t seed = 0;
  std::string baseline;   // what speedups are measured against, e.g. "cpu_naive.cpp"
  double speedup = 0;     // geometric mean over the bench shapes; 0 when untimed
  bool verified = false;  // re-checked in a fresh worker with a fresh seed (the evaluator sets it)
  // How its shapes become problems: the op version, the dtype, and which dim varies at run time
  // ("M" for tokens; empty: none).
  int op_version = 1;
  std::string dtype = "f32";
  std::string dynamic_dim;
  std::string created_at;  // UTC, ISO 8601; assigned by the store
  // The device's roof as the evaluator measured it (bandwidth, FLOP peak), filed with the device's
  // row (kforge serve draws it); 0: not measured.
  double device_gbps = 0, device_gflops = 0;
  // What the compiler reported about the kernel's binary: registers per thread, spill bytes and
  // static shared memory per block (GPU kernels; -1 where unknown), and the binary's size (0 where
  // unknown). Filed with the evaluation, since another arch or compiler builds another binary.
  int registers = -1, spill_bytes = -1, shared_bytes = -1;
  std::int64_t code_bytes = 0;
  // The pool worker that ran it, "<name>@<host>" ("slurm#1@node7"); empty: the run's one worker.
  std::string worker;
  std::vector<MeasurementRecord> measurements;
};

// One row of `kforge db list`: a kernel and its latest evaluation.
struct KernelSummary {
  KernelRecord kernel;
  EvaluationRecord latest;  // measurements included
  int evaluations = 0;
};

struct ListFilter {
  std::string op, backend, status;  // empty: any; status applies to the latest evaluation
};

// What a lookup asks for. The static key is the sorted "NAME=value" list of the fixed dims
// ("K=4096,N=2048"); dyn the value of the dynamic dim, or nullopt when the op has none.
struct ProblemQuery {
  std::string op;
  int op_version = 1;
  std::string dtype = "f32";
  std::string static_key;
  std::optional<std::int64_t> dyn;
  std::string dynamic_dim;  // its name, "M"; only for the miss log
};
// Splits a shape label ("K=4096,M=8,N=2048") on the dynamic dim ("M") into a query.
ProblemQuery problem_query(const std::string& op, const std::string& dtype, const std::string& shape,
                           const std::string& dynamic_dim, int op_version = 1);
std::string problem_key(const ProblemQuery& query);

// One published row: the kernel to use for a problem on a device class under an env.
struct BestRecord {
  std::string problem_key, device_key, env_key;
  std::string op;
  int op_version = 1;
  std::string dtype, static_key;
  std::optional<std::int64_t> dyn;
  std::string kernel_key, evaluation_key;
  double median_us = 0, speedup = 0, roofline_pct = 0;
  int samples = 0;
  bool stale = false;  // measured under an env that is no longer the device's newest
  std::string published_at;
};

struct LibraryStats {
  std::int64_t kernels = 0, evaluations = 0, measurements = 0, problems = 0, devices = 0, envs = 0, runs = 0;
  std::int64_t best = 0, stale_best = 0, misses = 0, llm_calls = 0, file_bytes = 0;
  std::map<std::string, std::int64_t> evaluations_by_status;
};

// What an import added (rows already present are not counted).
struct ImportSummary {
  std::int64_t kernels = 0, evaluations = 0, measurements = 0, llm_calls = 0;
};

// One HTTP attempt at an LLM call. The API key is never in it.
struct LlmCallRecord {
  std::string run_id, model, endpoint, request, response, status;  // status: ok, http_error, timeout, ...
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
  double cost_usd = 0, latency_ms = 0;
  std::string created_at;    // assigned by the store when empty
  std::string request_hash;  // of the conversation sent: what a replay looks the call up by
  int http_status = 0;       // 0 when no HTTP answer came
  int attempt = 1;
  std::string error;         // why, when status is not "ok"
  std::string provider;      // "openai" or "anthropic": how the response reads
};

// A search's state for one task of a run (JSON, the agent's business), stored with an evaluation.
struct SearchStateRecord {
  std::string run_id, task, state;
};

// Geometric mean of the timed shapes' medians, in microseconds; 0 when nothing was timed. The
// one number kforge ranks a kernel's evaluation by.
double geomean_median_us(const EvaluationRecord& evaluation);

class KernelStore {
 public:
  static constexpr int kSchemaVersion = 7;
  // A measurement publishes only with at least this many timed samples.
  static constexpr int kMinPublishSamples = 10;

  // Opens (creating if needed, unless read_only) and migrates the schema. Refuses a file from a
  // newer schema, a corrupt file, or a path that cannot be opened, with one line saying which.
  // A writer blocked by another process's transaction waits up to `busy_timeout_ms`, then fails.
  static Result<KernelStore> open(const std::string& path, bool read_only = false, int busy_timeout_ms = 30000);

  // Stores the kernel (once per key) and one evaluation with its measurements, and republishes
  // `best`, atomically. Returns the evaluation's local id.
  // With `state`, a search's state is saved in the same transaction: a kill leaves both or neither.
  Result<std::int64_t> record(const KernelRecord& kernel, const EvaluationRecord& evaluation,
                              const SearchStateRecord* state = nullptr);
  // Many at once, in one transaction with one republish: for a search storing a generation.
  Result<std::vector<std::int64_t>> record_batch(const std::vector<std::pair<KernelRecord, EvaluationRecord>>& batch,
                                                 const SearchStateRecord* state = nullptr);
  Status record_run(const RunRecord& run);
  Status end_run(const std::string& run_id);
  Status record_device(const DeviceRecord& device);  // inserts or completes a device's row
  Status record_llm_call(const LlmCallRecord& call);
  // A run's LLM calls, in the order they were made.
  Result<std::vector<LlmCallRecord>> llm_calls(const std::string& run_id) const;
  // A search's state per task ("" holds the run's options), as saved; empty for an unknown run.
  Status save_search_state(const std::string& run_id, const std::string& task, const std::string& state);
  Result<std::map<std::string, std::string>> search_states(const std::string& run_id) const;
  // Every run, oldest first; ended_at empty while a run has not ended.
  Result<std::vector<RunRecord>> runs() const;
  // Counts one request for a problem the library had no kernel for on `device_key`.
  Status record_miss(const ProblemQuery& query, const std::string& device_key, std::int64_t count = 1);

  // Recomputes `best` from every measurement (done by record and import; exposed for tools).
  Status publish();

  // Every kernel with its latest evaluation, newest first.
  Result<std::vector<KernelSummary>> list(const ListFilter& filter = {}) const;
  // The kernel stored under `key`, or under the one key that starts with it; source included.
  Result<std::optional<KernelRecord>> find_kernel(const std::string& key) const;
  // A kernel's evaluations, oldest first, measurements included.
  Result<std::vector<EvaluationRecord>> evaluations(const std::string& kernel_key) const;
  // Every evaluation of a task's kernels in the order they were stored, measurements included.
  Result<std::vector<EvaluationRecord>> task_history(const std::string& task) const;
  // Published rows, `device_key` and `op` filtering when not empty.
  Result<std::vector<BestRecord>> best(const std::string& device_key = "", const std::string& op = "") const;
  Result<std::vector<std::pair<BestRecord, std::int64_t>>> misses() const;  // problem, device, count
  Result<LibraryStats> stats() const;

  // Copies every row of the library at `path` that this one lacks, then republishes `best`; one
  // transaction. An older-schema file is migrated in a temporary copy; the file is never written.
  Result<ImportSummary> import_from(const std::string& path);
  // A single-file snapshot (VACUUM INTO); `out` must not exist.
  Status export_to(const std::string& out) const;
  // integrity_check, then every `best` kernel's source re-hashed against its key; one line per
  // problem found, none when the library is sound.
  Result<std::vector<std::string>> verify() const;

  // Housekeeping that deletes no kernel, evaluation or measurement (they are history): removes
  // problems, envs and runs nothing refers to and misses older than `miss_days`, republishes,
  // checkpoints the WAL and VACUUMs. Returns the rows removed and the file size before and after.
  struct GcSummary {
    std::int64_t problems = 0, envs = 0, runs = 0, misses = 0, bytes_before = 0, bytes_after = 0;
  };
  Result<GcSummary> gc(int miss_days = 90);

  int schema_version() const;
  const std::string& path() const { return path_; }

  KernelStore(KernelStore&& other) noexcept;
  KernelStore& operator=(KernelStore&&) = delete;
  KernelStore(const KernelStore&) = delete;
  ~KernelStore();

 private:
  KernelStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::string path_;
};

// The published table of one library for one device, in memory: what the inference core (and the
// search's retrieval) resolves against. Loaded once through a read-only connection; resolve() is
// a hash lookup and never touches the file. Thread-safe.
class BestKernels {
 public:
  enum class Match { exact, nearest_dyn, nearest_device, none };
  struct Entry {
    BestRecord best;
    int units = 0;  // of its device
  };
  struct Resolution {
    Match match = Match::none;
    const Entry* entry = nullptr;  // null for Match::none; valid while the BestKernels lives
  };

  // `device_key`: this machine's device; rows of the same vendor and arch are kept for fallback.
  static Result<BestKernels> load(const std::string& path, const std::string& device_key);

  // exact problem → nearest tuned dynamic dim → same arch, nearest SM/CU count → none (the miss
  // is counted, for flush_misses). Non-stale rows win over stale ones.
  Resolution resolve(const ProblemQuery& query) const;
  // Writes the misses counted so far into the library's miss table (a short read-write open).
  Status flush_misses();
  // The source and metadata of a kernel a resolution returned.
  const KernelRecord* kernel(const std::string& kernel_key) const;
  std::size_t size() const { return rows_; }

  BestKernels(BestKernels&& other) noexcept;
  BestKernels(const BestKernels&) = delete;

 private:
  BestKernels() = default;
  struct Family {              // one (op, version, dtype, static dims)
    std::vector<Entry> here;   // this device, sorted by dyn
    std::vector<Entry> other;  // same arch, other unit counts, sorted by |units - ours|, dyn
  };
  std::string path_, device_key_;
  int units_ = 0;
  std::size_t rows_ = 0;
  std::unordered_map<std::string, Family> families_;
  std::unordered_map<std::string, KernelRecord> kernels_;
  mutable std::mutex miss_mutex_;
  mutable std::map<std::string, std::pair<ProblemQuery, std::int64_t>> misses_;
};

}  // namespace kforge
