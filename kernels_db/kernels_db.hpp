// kernels_db: the SQLite kernel library: every kernel kforge evaluated, and every measurement.
//
// A kernel is stored once under its content hash (source + params + backend); each evaluation of
// it adds one evaluation row (status, why it failed, the tolerance and seed used) and one
// measurement row per shape (correctness and timing statistics). Writes are one transaction each
// (BEGIN IMMEDIATE, WAL, busy timeout), so a failed or interrupted write leaves nothing partial.
// The schema is versioned with PRAGMA user_version and numbered migrations; a file written by a
// newer kforge is refused rather than misread. It depends on common only: callers translate their
// results into the plain records below.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/common.hpp"

struct sqlite3;

namespace kforge {

struct KernelRecord {
  std::string key;      // content hash
  std::string task;     // "llm/rmsnorm"
  std::string backend;  // "cpu"
  std::string entry;
  std::string source;
  std::string params_json;  // {"BLOCK":256}
  std::string origin;       // where it came from: a seed file name, "user", ...
};

struct MeasurementRecord {
  std::string shape;  // "M=16,N=4096"
  bool bench = false;
  bool correct = false;
  double max_abs_error = 0, max_rel_error = 0;
  std::optional<int> n;  // timing, when the shape was timed
  double min_us = 0, median_us = 0, p20_us = 0, p80_us = 0, mean_us = 0, std_us = 0, cv = 0;
  double gbps = 0, gflops = 0;
  double baseline_median_us = 0, speedup = 0;  // 0: no baseline was timed
};

struct EvaluationRecord {
  std::int64_t id = 0;  // assigned by the store
  std::string kernel_key;
  std::string device;  // "cpu:AMD EPYC 7B13"
  std::string status;  // ok, compile_error, incorrect, crash, timeout, runtime_error
  std::string message;
  std::string log;
  double atol = 0, rtol = 0;
  std::uint64_t seed = 0;
  std::string baseline;     // what speedups are measured against, e.g. "cpu_naive.cpp"
  double speedup = 0;       // geometric mean over the bench shapes; 0 when untimed
  std::string created_at;  // UTC, ISO 8601; assigned by the store
  std::vector<MeasurementRecord> measurements;
};

// One row of `kforge db list`: a kernel and its latest evaluation.
struct KernelSummary {
  KernelRecord kernel;
  EvaluationRecord latest;  // measurements included
  int evaluations = 0;
};

// Geometric mean of the timed shapes' medians, in microseconds; 0 when nothing was timed. The
// one number kforge ranks a kernel's evaluation by.
double geomean_median_us(const EvaluationRecord& evaluation);

class KernelStore {
 public:
  static constexpr int kSchemaVersion = 3;

  // Opens (creating if needed, unless read_only) and migrates the schema. Refuses a file from a
  // newer schema, a corrupt file, or a path that cannot be opened, with one line saying which.
  // A writer blocked by another process's transaction waits up to `busy_timeout_ms`, then fails.
  static Result<KernelStore> open(const std::string& path, bool read_only = false, int busy_timeout_ms = 30000);

  // Stores the kernel (once per key) and one evaluation with its measurements, atomically.
  Result<std::int64_t> record(const KernelRecord& kernel, const EvaluationRecord& evaluation);

  // Every kernel with its latest evaluation, newest first; `task` filters when not empty.
  Result<std::vector<KernelSummary>> list(const std::string& task = "") const;

  // The kernel stored under `key`, source included; an empty optional when there is none.
  Result<std::optional<KernelRecord>> find_kernel(const std::string& key) const;

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

}  // namespace kforge
