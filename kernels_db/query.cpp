// Reading the library: kernels with their latest evaluation, a kernel's or a task's evaluations
// with their measurements, the published and the missed problems, counts; and the number an
// evaluation is ranked by.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

using db::Statement;

// The columns an evaluation is read with, and the reader that goes with them.
constexpr const char* kEvaluationColumns =
    "e.evaluation_id, e.evaluation_key, e.kernel_key, e.device_key, e.env_key, e.run_id, e.status, e.message, "
    "e.log, e.output, e.atol, e.rtol, e.seed, e.baseline, e.speedup, e.verified, e.op_version, e.dtype, "
    "e.dynamic_dim, e.created_at, e.registers, e.spill_bytes, e.shared_bytes, e.code_bytes, e.worker";

// Reads kEvaluationColumns starting at column `first`.
EvaluationRecord read_evaluation(const Statement& st, int first = 0) {
  EvaluationRecord e;
  e.id = st.integer(first);
  e.key = st.text(first + 1);
  e.kernel_key = st.text(first + 2);
  e.device = st.text(first + 3);
  e.env.driver = st.text(first + 4);  // the key; the fields are in the env table (see load_env)
  e.run_id = st.text(first + 5);
  e.status = st.text(first + 6);
  e.message = st.text(first + 7);
  e.log = st.text(first + 8);
  e.output = st.text(first + 9);
  e.atol = st.real(first + 10);
  e.rtol = st.real(first + 11);
  e.seed = std::strtoull(st.text(first + 12).c_str(), nullptr, 10);
  e.baseline = st.text(first + 13);
  e.speedup = st.real(first + 14);
  e.verified = st.integer(first + 15) != 0;
  e.op_version = static_cast<int>(st.integer(first + 16));
  e.dtype = st.text(first + 17);
  e.dynamic_dim = st.text(first + 18);
  e.created_at = st.text(first + 19);
  auto count = [&](int column) { return st.is_null(first + column) ? -1 : st.integer(first + column); };
  e.registers = static_cast<int>(count(20));
  e.spill_bytes = static_cast<int>(count(21));
  e.shared_bytes = static_cast<int>(count(22));
  e.code_bytes = std::max<std::int64_t>(count(23), 0);
  e.worker = st.text(first + 24);
  return e;
}

void load_env(sqlite3* db, EvaluationRecord& e) {
  Statement st(db, "SELECT driver, runtime, compiler, kforge_version FROM env WHERE env_key = ?");
  st.bind(1, e.env.driver);
  e.env = {};
  if (st.step() == SQLITE_ROW) e.env = {st.text(0), st.text(1), st.text(2), st.text(3)};
}

void load_measurements(sqlite3* db, EvaluationRecord& e) {
  Statement st(db,
               "SELECT shape, kind, correct, max_abs_error, max_rel_error, n, min_us, median_us, p20_us, "
               "p80_us, mean_us, std_us, cv, gbps, gflops, baseline_median_us, speedup, floor_us, roofline_pct "
               "FROM measurement WHERE evaluation_id = ? ORDER BY rowid");
  st.bind_int(1, e.id);
  while (st.step() == SQLITE_ROW) {
    MeasurementRecord m;
    m.shape = st.text(0);
    m.bench = st.text(1) == "bench";
    m.correct = st.integer(2) != 0;
    m.max_abs_error = st.real(3);
    m.max_rel_error = st.real(4);
    if (!st.is_null(5)) {
      m.n = static_cast<int>(st.integer(5));
      m.min_us = st.real(6);
      m.median_us = st.real(7);
      m.p20_us = st.real(8);
      m.p80_us = st.real(9);
      m.mean_us = st.real(10);
      m.std_us = st.real(11);
      m.cv = st.real(12);
      m.gbps = st.real(13);
      m.gflops = st.real(14);
    }
    m.baseline_median_us = st.real(15);  // NULL reads as 0
    m.speedup = st.real(16);
    m.floor_us = st.real(17);
    m.roofline_pct = st.real(18);
    e.measurements.push_back(std::move(m));
  }
}

Result<std::vector<EvaluationRecord>> query_evaluations(sqlite3* db, const std::string& path, const std::string& where,
                                                        const std::string& value) {
  Statement st(db, fmt::format("SELECT {} FROM evaluation e JOIN kernel k USING(kernel_key) WHERE {} "
                               "ORDER BY e.created_at, e.evaluation_id",
                               kEvaluationColumns, where));
  if (!st.prepared()) return make_error(ErrorKind::database, "{}: {}", path, st.error().message);
  st.bind(1, value);
  std::vector<EvaluationRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_evaluation(st));
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path, st.error().message);
  for (auto& e : out) load_env(db, e), load_measurements(db, e);
  return out;
}

}  // namespace

double geomean_median_us(const EvaluationRecord& evaluation) {
  double log_sum = 0;
  int n = 0;
  for (const auto& m : evaluation.measurements)
    if (m.n && m.median_us > 0) log_sum += std::log(m.median_us), ++n;
  return n ? std::exp(log_sum / n) : 0;
}

Result<std::vector<KernelSummary>> KernelStore::list(const ListFilter& filter) const {
  Statement st(db_,
               fmt::format("SELECT k.kernel_key, k.task, k.backend, k.entry, k.params_json, k.origin, k.parent_key, "
                           "k.operator, k.run_id, (SELECT count(*) FROM evaluation WHERE kernel_key = k.kernel_key), "
                           "{} FROM kernel k JOIN evaluation e ON e.evaluation_id = "
                           "  (SELECT max(evaluation_id) FROM evaluation WHERE kernel_key = k.kernel_key) "
                           "WHERE (?1 = '' OR k.task = ?1) AND (?2 = '' OR k.backend = ?2) AND (?3 = '' OR e.status "
                           "= ?3) ORDER BY e.evaluation_id DESC",
                           kEvaluationColumns));
  if (!st.prepared()) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  st.bind(1, filter.op).bind(2, filter.backend).bind(3, filter.status);
  std::vector<KernelSummary> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    KernelSummary s;
    s.kernel = {st.text(0), st.text(1), st.text(2), st.text(3), "",
                st.text(4), st.text(5), st.text(6), st.text(7), st.text(8)};
    s.evaluations = static_cast<int>(st.integer(9));
    s.latest = read_evaluation(st, 10);  // after the kernel's ten columns
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  for (auto& s : out) load_env(db_, s.latest), load_measurements(db_, s.latest);
  return out;
}

Result<std::optional<KernelRecord>> KernelStore::find_kernel(const std::string& key) const {
  Statement st(db_,
               "SELECT kernel_key, task, backend, entry, source, params_json, origin, parent_key, operator, run_id "
               "FROM kernel WHERE kernel_key = ?1 OR (length(?1) >= 4 AND substr(kernel_key, 1, length(?1)) = ?1) "
               "ORDER BY kernel_key = ?1 DESC LIMIT 2");
  st.bind(1, key);
  std::vector<KernelRecord> found;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW)
    found.push_back({st.text(0), st.text(1), st.text(2), st.text(3), st.text(4), st.text(5), st.text(6), st.text(7),
                     st.text(8), st.text(9)});
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  if (found.empty()) return std::optional<KernelRecord>();
  if (found.size() > 1 && found[0].key != key)
    return make_error(ErrorKind::invalid_input, "{}: '{}' is the start of more than one kernel key; give more of it",
                      path_, key);
  return std::optional<KernelRecord>(std::move(found[0]));
}

Result<std::vector<EvaluationRecord>> KernelStore::evaluations(const std::string& kernel_key) const {
  return query_evaluations(db_, path_, "e.kernel_key = ?1", kernel_key);
}

Result<std::vector<EvaluationRecord>> KernelStore::task_history(const std::string& task) const {
  return query_evaluations(db_, path_, "k.task = ?1", task);
}

Result<std::vector<BestRecord>> KernelStore::best(const std::string& device_key, const std::string& op) const {
  Statement st(db_,
               "SELECT problem_key, device_key, env_key, op, op_version, dtype, static_key, dyn, kernel_key, "
               "evaluation_key, median_us, speedup, roofline_pct, samples, stale, published_at FROM best "
               "WHERE (?1 = '' OR device_key = ?1) AND (?2 = '' OR op = ?2) "
               "ORDER BY op, static_key, dyn, device_key, stale, env_key");
  st.bind(1, device_key).bind(2, op);
  std::vector<BestRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    BestRecord b;
    b.problem_key = st.text(0);
    b.device_key = st.text(1);
    b.env_key = st.text(2);
    b.op = st.text(3);
    b.op_version = static_cast<int>(st.integer(4));
    b.dtype = st.text(5);
    b.static_key = st.text(6);
    if (!st.is_null(7)) b.dyn = st.integer(7);
    b.kernel_key = st.text(8);
    b.evaluation_key = st.text(9);
    b.median_us = st.real(10);
    b.speedup = st.real(11);
    b.roofline_pct = st.real(12);
    b.samples = static_cast<int>(st.integer(13));
    b.stale = st.integer(14) != 0;
    b.published_at = st.text(15);
    out.push_back(std::move(b));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Result<std::vector<std::pair<BestRecord, std::int64_t>>> KernelStore::misses() const {
  Statement st(db_,
               "SELECT p.problem_key, m.device_key, p.op, p.op_version, p.dtype, p.static_key, p.dyn, m.count "
               "FROM miss m JOIN problem p USING(problem_key) ORDER BY m.count DESC, p.problem_key");
  std::vector<std::pair<BestRecord, std::int64_t>> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    BestRecord b;
    b.problem_key = st.text(0);
    b.device_key = st.text(1);
    b.op = st.text(2);
    b.op_version = static_cast<int>(st.integer(3));
    b.dtype = st.text(4);
    b.static_key = st.text(5);
    if (!st.is_null(6)) b.dyn = st.integer(6);
    out.emplace_back(std::move(b), st.integer(7));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Result<LibraryStats> KernelStore::stats() const {
  LibraryStats s;
  auto count = [&](const char* table) { return db::scalar(db_, fmt::format("SELECT count(*) FROM {}", table)); };
  s.kernels = count("kernel");
  s.evaluations = count("evaluation");
  s.measurements = count("measurement");
  s.problems = count("problem");
  s.devices = count("device");
  s.envs = count("env");
  s.runs = count("run");
  s.best = count("best");
  s.stale_best = db::scalar(db_, "SELECT count(*) FROM best WHERE stale");
  s.misses = count("miss");
  s.llm_calls = count("llm_call");
  s.file_bytes = db::scalar(db_, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
  Statement st(db_, "SELECT status, count(*) FROM evaluation GROUP BY status ORDER BY status");
  while (st.step() == SQLITE_ROW) s.evaluations_by_status[st.text(0)] = st.integer(1);
  if (s.kernels < 0) return make_error(ErrorKind::database, "{}: {}", path_, sqlite3_errmsg(db_));
  return s;
}

}  // namespace kforge
