// KernelStore: opening a library, and the queries that record into it and read from it.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/schema.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

using db::exec;
using db::Statement;
using db::transaction;

std::string random_hex() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}", device(), device());
}

// The columns an evaluation is read with, and the reader that goes with them.
constexpr const char* kEvaluationColumns =
    "e.evaluation_id, e.evaluation_key, e.kernel_key, e.device_key, e.env_key, e.run_id, e.status, e.message, "
    "e.log, e.output, e.atol, e.rtol, e.seed, e.baseline, e.speedup, e.verified, e.op_version, e.dtype, "
    "e.dynamic_dim, e.created_at, e.registers, e.spill_bytes, e.shared_bytes, e.code_bytes";

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

// Dims of a shape label, "K=4096,M=8" → {{"K",4096},{"M",8}}; malformed pieces are skipped.
std::vector<std::pair<std::string, std::int64_t>> parse_shape(const std::string& shape) {
  std::vector<std::pair<std::string, std::int64_t>> dims;
  std::size_t start = 0;
  while (start < shape.size()) {
    std::size_t end = shape.find(',', start);
    if (end == std::string::npos) end = shape.size();
    const std::string piece = shape.substr(start, end - start);
    if (auto eq = piece.find('='); eq != std::string::npos)
      dims.emplace_back(piece.substr(0, eq), std::strtoll(piece.c_str() + eq + 1, nullptr, 10));
    start = end + 1;
  }
  std::sort(dims.begin(), dims.end());
  return dims;
}

// A JSON string literal of `text` (for json_each parameters).
std::string sql_json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", c);
    else
      out += c;
  }
  return out + "\"";
}

void sql_hash(sqlite3_context* context, int argc, sqlite3_value** argv) {
  std::string joined;
  for (int i = 0; i < argc; ++i) {
    if (i) joined += '\n';
    if (auto* t = sqlite3_value_text(argv[i])) joined += reinterpret_cast<const char*>(t);
  }
  const std::string hash = content_hash(joined);
  sqlite3_result_text(context, hash.c_str(), -1, SQLITE_TRANSIENT);
}

std::string value_text(sqlite3_value* v) {
  auto* t = sqlite3_value_text(v);
  return t ? reinterpret_cast<const char*>(t) : "";
}

void sql_problem_key(sqlite3_context* context, int, sqlite3_value** argv) {
  const std::string key = problem_key(problem_query(value_text(argv[0]), value_text(argv[2]), value_text(argv[3]),
                                                    value_text(argv[4]), sqlite3_value_int(argv[1])));
  sqlite3_result_text(context, key.c_str(), -1, SQLITE_TRANSIENT);
}

void sql_static_key(sqlite3_context* context, int, sqlite3_value** argv) {
  const std::string key = problem_query("", "", value_text(argv[0]), value_text(argv[1])).static_key;
  sqlite3_result_text(context, key.c_str(), -1, SQLITE_TRANSIENT);
}

void sql_dyn(sqlite3_context* context, int, sqlite3_value** argv) {
  const auto dyn = problem_query("", "", value_text(argv[0]), value_text(argv[1])).dyn;
  if (dyn)
    sqlite3_result_int64(context, *dyn);
  else
    sqlite3_result_null(context);
}

}  // namespace

namespace db {

// Recomputes `best` inside the caller's transaction. A measurement counts when its evaluation is
// ok and re-verified (flagged by the evaluator, or an independent ok evaluation of the same
// kernel on the same device and env with another seed exists), the shape was correct and timed
// with enough samples, and no later evaluation of the kernel on that device found it wrong.
// Per problem, device and env the lowest median wins; rows whose env is not the one of the
// device's newest evaluation are flagged stale.
Status republish(sqlite3* db, const std::string& device_key, const std::string& problems_json) {
  const bool all = device_key.empty();
  // ?3 = 1: everything; else only device ?4 and the problems in the JSON array ?5. Two texts, so
  // the scoped one can use the indexes.
  const std::string scope = all ? "?3 AND ?4 = ?4 AND ?5 = ?5"
                                : "?3 = 0 AND device_key = ?4 AND problem_key IN (SELECT value FROM json_each(?5))";
  Statement clear(db, fmt::format("DELETE FROM best WHERE {}", scope));
  clear.bind_int(3, all).bind(4, device_key).bind(5, problems_json);
  if (clear.step() != SQLITE_DONE) return clear.error();
  Statement st(
      db, fmt::format(
              R"sql(
INSERT INTO best(problem_key, device_key, env_key, op, op_version, dtype, static_key, dyn, kernel_key,
                 evaluation_key, median_us, speedup, roofline_pct, samples, stale, published_at)
SELECT problem_key, device_key, env_key, op, op_version, dtype, static_key, dyn, kernel_key, evaluation_key,
       median_us, speedup, roofline_pct, n, 0, ?1 FROM (
  SELECT m.problem_key, e.device_key, e.env_key, p.op, p.op_version, p.dtype, p.static_key, p.dyn, e.kernel_key,
         e.evaluation_key, m.median_us, m.speedup, m.roofline_pct, m.n,
         row_number() OVER (PARTITION BY m.problem_key, e.device_key, e.env_key
                            ORDER BY m.median_us, e.kernel_key, e.evaluation_key) AS rank
  FROM measurement m JOIN evaluation e USING(evaluation_id) JOIN problem p USING(problem_key)
  WHERE e.status = 'ok' AND m.correct AND m.n >= ?2 AND m.median_us > 0
    AND {}
    AND (e.verified OR EXISTS(SELECT 1 FROM evaluation r WHERE r.kernel_key = e.kernel_key
           AND r.device_key = e.device_key AND r.env_key = e.env_key AND r.status = 'ok' AND r.seed <> e.seed))
    AND NOT EXISTS(SELECT 1 FROM evaluation f WHERE f.kernel_key = e.kernel_key AND f.device_key = e.device_key
           AND f.status IN ('incorrect', 'crash', 'runtime_error', 'rejected_cheat')
           AND (f.created_at > e.created_at OR (f.created_at = e.created_at AND f.evaluation_id > e.evaluation_id))))
WHERE rank = 1)sql",
              all ? scope : "?3 = 0 AND +e.device_key = ?4 AND m.problem_key IN (SELECT value FROM json_each(?5))"));
  st.bind(1, db::now_utc()).bind_int(2, KernelStore::kMinPublishSamples);
  st.bind_int(3, all).bind(4, device_key).bind(5, problems_json);
  if (st.step() != SQLITE_DONE) return st.error();
  if (all)
    return exec(db, R"sql(
UPDATE best SET stale = env_key <> (SELECT e.env_key FROM evaluation e WHERE e.device_key = best.device_key
                                    ORDER BY e.created_at DESC, e.evaluation_id DESC LIMIT 1))sql");
  Statement newest(
      db, "SELECT env_key FROM evaluation WHERE device_key = ? ORDER BY created_at DESC, evaluation_id DESC LIMIT 1");
  newest.bind(1, device_key);
  if (newest.step() != SQLITE_ROW) return {};
  Statement stale(db, "UPDATE best SET stale = env_key <> ?1 WHERE device_key = ?2 AND stale <> (env_key <> ?1)");
  stale.bind(1, newest.text(0)).bind(2, device_key);
  return stale.step() == SQLITE_DONE ? Status() : Status(stale.error());
}

std::string now_utc() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buffer, static_cast<int>(ts.tv_nsec / 1000000));
}

void register_functions(sqlite3* db) {
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
  sqlite3_create_function(db, "kforge_hash", -1, flags, nullptr, sql_hash, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_problem_key", 5, flags, nullptr, sql_problem_key, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_static_key", 2, flags, nullptr, sql_static_key, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_dyn", 2, flags, nullptr, sql_dyn, nullptr, nullptr);
}

}  // namespace db

std::string kernel_key(const std::string& task, const std::string& backend, const std::string& params_json,
                       const std::string& source) {
  return content_hash(task + "\n" + backend + "\n" + params_json + "\n" + source);
}

DeviceRecord parse_device_key(const std::string& key) {
  DeviceRecord d;
  d.key = key;
  if (key.rfind("cpu:", 0) == 0) {
    d.vendor = "cpu";
    d.arch = d.name = key.substr(4);
    return d;
  }
  const auto first = key.find(':'), last = key.rfind(':');
  if (first != std::string::npos && last != first) {
    d.vendor = key.substr(0, first);
    d.arch = key.substr(first + 1, last - first - 1);
    d.units = std::atoi(key.c_str() + last + 1);
  } else {
    d.vendor = d.arch = key;
  }
  d.name = key;
  return d;
}

std::string EnvRecord::key() const {
  if (driver.empty() && runtime.empty() && compiler.empty() && kforge_version.empty()) return "unknown";
  return content_hash(driver + "\n" + runtime + "\n" + compiler + "\n" + kforge_version);
}

std::string new_run_id() {
  return db::now_utc().substr(0, 10) + "-" + random_hex();
}

ProblemQuery problem_query(const std::string& op, const std::string& dtype, const std::string& shape,
                           const std::string& dynamic_dim, int op_version) {
  ProblemQuery q;
  q.op = op;
  q.op_version = op_version;
  q.dtype = dtype;
  q.dynamic_dim = dynamic_dim;
  for (const auto& [name, value] : parse_shape(shape)) {
    if (name == dynamic_dim) {
      q.dyn = value;
      continue;
    }
    if (!q.static_key.empty()) q.static_key += ',';
    q.static_key += fmt::format("{}={}", name, value);
  }
  return q;
}

std::string problem_key(const ProblemQuery& q) {
  std::string key = fmt::format("{}/v{}/{}/{}", q.op, q.op_version, q.dtype, q.static_key);
  if (q.dyn) key += fmt::format("/{}={}", q.dynamic_dim.empty() ? "dyn" : q.dynamic_dim, *q.dyn);
  return key;
}

double geomean_median_us(const EvaluationRecord& evaluation) {
  double log_sum = 0;
  int n = 0;
  for (const auto& m : evaluation.measurements)
    if (m.n && m.median_us > 0) log_sum += std::log(m.median_us), ++n;
  return n ? std::exp(log_sum / n) : 0;
}

Result<KernelStore> KernelStore::open(const std::string& path, bool read_only, int busy_timeout_ms) {
  namespace fs = std::filesystem;
  if (path.empty()) return make_error(ErrorKind::io, "the kernel library path is empty");
  std::error_code ec;
  const fs::path parent = fs::absolute(path, ec).parent_path();
  if (ec || !fs::is_directory(parent, ec))
    return make_error(ErrorKind::io, "{}: cannot open the kernel library: no directory {}", path, parent.string());
  if (read_only && !fs::exists(path, ec))
    return make_error(ErrorKind::io, "{}: no such kernel library (run kforge eval or search first)", path);

  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Error e = make_error(ErrorKind::io, "{}: cannot open the kernel library: {}", path,
                         db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return e;
  }
  KernelStore store(db, path);
  // SQLite's own busy_timeout sleeps up to 100 ms a try, so two busy writers mostly wait; short
  // sleeps keep them moving. The argument is the timeout in ms.
  sqlite3_busy_handler(
      db,
      [](void* timeout, int tries) -> int {
        const std::int64_t waited = tries < 50 ? tries : 50 + (tries - 50) * 5;  // ms, given the sleeps below
        if (waited >= reinterpret_cast<std::intptr_t>(timeout)) return 0;
        sqlite3_sleep(tries < 50 ? 1 : 5);
        return 1;
      },
      reinterpret_cast<void*>(static_cast<std::intptr_t>(busy_timeout_ms)));
  db::register_functions(db);
  auto fail = [&](const Error& e) { return make_error(ErrorKind::database, "{}: {}", path, e.message); };

  // quick_check also tells a non-database file ("file is not a database") from a real one.
  {
    Statement check(db, "PRAGMA quick_check");
    if (!check.prepared() || check.step() != SQLITE_ROW) return fail(check.error());
    if (check.text(0) != "ok") return make_error(ErrorKind::database, "{}: corrupt: {}", path, check.text(0));
  }
  const int version = db::user_version(db);
  // Version 0 is a new, empty file; a version-0 file with tables belongs to someone else.
  if (version == 0 && db::scalar(db, "SELECT count(*) FROM sqlite_master") > 0)
    return make_error(ErrorKind::database, "{}: an SQLite database, but not a kforge kernel library", path);
  if (version > kSchemaVersion)
    return make_error(ErrorKind::database,
                      "{}: schema version {} is newer than this kforge understands ({}); use a kforge that reads "
                      "schema {}",
                      path, version, kSchemaVersion, version);
  if (read_only) {
    if (version < kSchemaVersion)
      return make_error(ErrorKind::database, "{}: schema version {} needs migrating to {}: run kforge db gc on it once",
                        path, version, kSchemaVersion);
    return store;
  }
  if (auto s = exec(db, "PRAGMA journal_mode=WAL"); !s) return fail(s.error());
  (void)exec(db, "PRAGMA synchronous=NORMAL");  // in WAL: a killed process loses nothing committed
  // Migrations rebuild tables, which foreign-key enforcement would refuse mid-way; it is turned
  // on once the schema is current.
  if (auto s = db::migrate(db, version); !s) return fail(s.error());
  (void)exec(db, "PRAGMA foreign_keys=ON");
  return store;
}

namespace {

Status insert_device(sqlite3* db, const DeviceRecord& d) {
  Statement st(db, R"sql(
INSERT INTO device(device_key, vendor, arch, units, name, memory_bytes, bandwidth_gbps, peak_gflops)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT(device_key) DO UPDATE SET
  memory_bytes = coalesce(excluded.memory_bytes, memory_bytes),
  bandwidth_gbps = coalesce(excluded.bandwidth_gbps, bandwidth_gbps),
  peak_gflops = coalesce(excluded.peak_gflops, peak_gflops))sql");
  st.bind(1, d.key).bind(2, d.vendor).bind(3, d.arch).bind_int(4, d.units).bind(5, d.name);
  if (d.memory_bytes > 0)
    st.bind_int(6, d.memory_bytes);
  else
    st.bind_null(6);
  st.bind_positive(7, d.bandwidth_gbps).bind_positive(8, d.peak_gflops);
  return st.step() == SQLITE_DONE ? Status() : Status(st.error());
}

Status insert_problem(sqlite3* db, const ProblemQuery& q) {
  Statement st(db, "INSERT OR IGNORE INTO problem VALUES(?,?,?,?,?,?,?)");
  st.bind(1, problem_key(q)).bind(2, q.op).bind_int(3, q.op_version).bind(4, q.dtype).bind(5, q.static_key);
  st.bind(6, q.dynamic_dim);
  if (q.dyn)
    st.bind_int(7, *q.dyn);
  else
    st.bind_null(7);
  return st.step() == SQLITE_DONE ? Status() : Status(st.error());
}

}  // namespace

Result<std::int64_t> KernelStore::record(const KernelRecord& kernel, const EvaluationRecord& evaluation,
                                         const SearchStateRecord* state) {
  auto ids = record_batch({{kernel, evaluation}}, state);
  if (!ids) return ids.error();
  return ids->front();
}

Result<std::vector<std::int64_t>> KernelStore::record_batch(
    const std::vector<std::pair<KernelRecord, EvaluationRecord>>& batch, const SearchStateRecord* state) {
  std::vector<std::int64_t> ids;
  const std::string now = db::now_utc();
  std::map<std::string, std::set<std::string>> touched;  // device -> problems to republish
  auto s = transaction(db_, [&]() -> Status {
    for (const auto& [kernel, evaluation] : batch) {
      Statement k(db_,
                  "INSERT OR IGNORE INTO kernel(kernel_key, task, backend, entry, source, params_json, origin, "
                  "created_at, parent_key, operator, run_id) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
      k.bind(1, kernel.key).bind(2, kernel.task).bind(3, kernel.backend).bind(4, kernel.entry);
      k.bind(5, kernel.source).bind(6, kernel.params_json).bind(7, kernel.origin).bind(8, now);
      k.bind(9, kernel.parent_key).bind(10, kernel.operator_name).bind(11, kernel.run_id);
      if (k.step() != SQLITE_DONE) return k.error();

      Statement device(db_, "SELECT 1 FROM device WHERE device_key = ?");
      device.bind(1, evaluation.device);
      if (device.step() != SQLITE_ROW)
        if (auto d = insert_device(db_, parse_device_key(evaluation.device)); !d) return d;
      const EnvRecord& env = evaluation.env;
      Statement en(db_, "INSERT OR IGNORE INTO env VALUES(?,?,?,?,?)");
      en.bind(1, env.key()).bind(2, env.driver).bind(3, env.runtime).bind(4, env.compiler).bind(5, env.kforge_version);
      if (en.step() != SQLITE_DONE) return en.error();

      const std::string seed = std::to_string(evaluation.seed);
      const std::string key =
          evaluation.key.empty()
              ? content_hash(kernel.key + "\n" + evaluation.device + "\n" + seed + "\n" + now + "\n" + random_hex())
              : evaluation.key;
      Statement e(db_,
                  "INSERT INTO evaluation(kernel_key, device_key, status, message, log, atol, rtol, seed, created_at, "
                  "baseline, speedup, evaluation_key, env_key, run_id, output, verified, op_version, dtype, "
                  "dynamic_dim, registers, spill_bytes, shared_bytes, code_bytes) "
                  "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      e.bind(1, kernel.key).bind(2, evaluation.device).bind(3, evaluation.status).bind(4, evaluation.message);
      e.bind(5, evaluation.log).bind(6, evaluation.atol).bind(7, evaluation.rtol);
      e.bind(8, seed).bind(9, now).bind(10, evaluation.baseline).bind_positive(11, evaluation.speedup);
      e.bind(12, key).bind(13, env.key()).bind(14, evaluation.run_id).bind(15, evaluation.output);
      e.bind_int(16, evaluation.verified).bind_int(17, evaluation.op_version).bind(18, evaluation.dtype);
      e.bind(19, evaluation.dynamic_dim).bind_count(20, evaluation.registers).bind_count(21, evaluation.spill_bytes);
      e.bind_count(22, evaluation.shared_bytes).bind_count(23, evaluation.code_bytes > 0 ? evaluation.code_bytes : -1);
      if (e.step() != SQLITE_DONE) return e.error();
      const std::int64_t evaluation_id = sqlite3_last_insert_rowid(db_);
      ids.push_back(evaluation_id);

      Statement st(db_,
                   "INSERT INTO measurement(evaluation_id, shape, kind, correct, max_abs_error, max_rel_error, n, "
                   "min_us, median_us, p20_us, p80_us, mean_us, std_us, cv, gbps, gflops, baseline_median_us, speedup, "
                   "problem_key, floor_us, roofline_pct) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      for (const auto& m : evaluation.measurements) {
        const ProblemQuery problem =
            problem_query(kernel.task, evaluation.dtype, m.shape, evaluation.dynamic_dim, evaluation.op_version);
        if (auto p = insert_problem(db_, problem); !p) return p;
        st.reset();
        st.bind_int(1, evaluation_id).bind(2, m.shape).bind(3, std::string(m.bench ? "bench" : "check"));
        st.bind_int(4, m.correct).bind(5, m.max_abs_error).bind(6, m.max_rel_error);
        if (m.n) {
          st.bind_int(7, *m.n).bind(8, m.min_us).bind(9, m.median_us).bind(10, m.p20_us).bind(11, m.p80_us);
          st.bind(12, m.mean_us).bind(13, m.std_us).bind(14, m.cv).bind(15, m.gbps).bind(16, m.gflops);
        }
        if (m.speedup > 0) st.bind(17, m.baseline_median_us).bind(18, m.speedup);
        st.bind(19, problem_key(problem)).bind_positive(20, m.floor_us).bind_positive(21, m.roofline_pct);
        if (st.step() != SQLITE_DONE) return st.error();
      }
      // Republish what this evaluation can change: its problems on its device, and every problem
      // the kernel is published for there (a failed evaluation withdraws it).
      std::set<std::string>& problems = touched[evaluation.device];
      Statement published(db_, "SELECT problem_key FROM best WHERE kernel_key = ? AND device_key = ?");
      published.bind(1, kernel.key).bind(2, evaluation.device);
      while (published.step() == SQLITE_ROW) problems.insert(published.text(0));
      for (const auto& m : evaluation.measurements)
        problems.insert(problem_key(
            problem_query(kernel.task, evaluation.dtype, m.shape, evaluation.dynamic_dim, evaluation.op_version)));
    }
    if (state) {
      Statement st(db_, "INSERT OR REPLACE INTO search_state VALUES(?,?,?,?)");
      st.bind(1, state->run_id).bind(2, state->task).bind(3, state->state).bind(4, now);
      if (st.step() != SQLITE_DONE) return st.error();
    }
    for (const auto& [device, problems] : touched) {
      std::string json = "[";
      for (const auto& k : problems) json += (json.size() > 1 ? "," : "") + sql_json_string(k);
      if (auto p = db::republish(db_, device, json + "]"); !p) return p;
    }
    return Status();
  });
  if (!s) return make_error(ErrorKind::database, "{}: cannot record the evaluation: {}", path_, s.error().message);
  return ids;
}

Status KernelStore::record_run(const RunRecord& run) {
  Statement st(db_, "INSERT OR IGNORE INTO run VALUES(?,?,?,?,?,?,?,NULL)");
  st.bind(1, run.id).bind(2, run.kforge_version).bind(3, run.command).bind(4, run.seed).bind(5, run.llm_models);
  st.bind(6, run.host).bind(7, run.started_at.empty() ? db::now_utc() : run.started_at);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot record the run: {}", path_, st.error().message);
  return {};
}

Status KernelStore::end_run(const std::string& run_id) {
  Statement st(db_, "UPDATE run SET ended_at = ? WHERE run_id = ?");
  st.bind(1, db::now_utc()).bind(2, run_id);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot end the run: {}", path_, st.error().message);
  return {};
}

Status KernelStore::record_device(const DeviceRecord& device) {
  if (auto s = insert_device(db_, device); !s)
    return make_error(ErrorKind::database, "{}: cannot record the device: {}", path_, s.error().message);
  return {};
}

Status KernelStore::record_llm_call(const LlmCallRecord& c) {
  const std::string at = c.created_at.empty() ? db::now_utc() : c.created_at;
  Statement st(db_,
               "INSERT OR IGNORE INTO llm_call(call_key, run_id, model, endpoint, request, response, prompt_tokens, "
               "completion_tokens, cost_usd, latency_ms, status, created_at, request_hash, http_status, attempt, error, "
               "provider) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  // A natural key, so that merging libraries never duplicates a call: two attempts of one request
  // differ by their number, two samples of one prompt by their reply.
  st.bind(1, content_hash(fmt::format("{}\n{}\n{}\n{}\n{}\n{}", c.run_id, c.model, at, c.request, c.attempt,
                                      c.response)));
  st.bind(2, c.run_id).bind(3, c.model).bind(4, c.endpoint).bind(5, c.request).bind(6, c.response);
  st.bind_int(7, c.prompt_tokens).bind_int(8, c.completion_tokens).bind(9, c.cost_usd).bind(10, c.latency_ms);
  st.bind(11, c.status).bind(12, at).bind(13, c.request_hash).bind_int(14, c.http_status).bind_int(15, c.attempt);
  st.bind(16, c.error).bind(17, c.provider);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot record the LLM call: {}", path_, st.error().message);
  return {};
}

Result<std::vector<LlmCallRecord>> KernelStore::llm_calls(const std::string& run_id) const {
  Statement st(db_,
               "SELECT run_id, model, endpoint, request, response, status, prompt_tokens, completion_tokens, cost_usd, "
               "latency_ms, created_at, request_hash, http_status, attempt, error, provider FROM llm_call WHERE run_id = ? "
               "ORDER BY created_at, rowid");
  st.bind(1, run_id);
  std::vector<LlmCallRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    LlmCallRecord c;
    c.run_id = st.text(0), c.model = st.text(1), c.endpoint = st.text(2), c.request = st.text(3);
    c.response = st.text(4), c.status = st.text(5);
    c.prompt_tokens = st.integer(6), c.completion_tokens = st.integer(7);
    c.cost_usd = st.real(8), c.latency_ms = st.real(9), c.created_at = st.text(10), c.request_hash = st.text(11);
    c.http_status = static_cast<int>(st.integer(12)), c.attempt = static_cast<int>(st.integer(13));
    c.error = st.text(14), c.provider = st.text(15);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Status KernelStore::save_search_state(const std::string& run_id, const std::string& task, const std::string& state) {
  Statement st(db_, "INSERT OR REPLACE INTO search_state VALUES(?,?,?,?)");
  st.bind(1, run_id).bind(2, task).bind(3, state).bind(4, db::now_utc());
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot save the search state: {}", path_, st.error().message);
  return {};
}

Result<std::map<std::string, std::string>> KernelStore::search_states(const std::string& run_id) const {
  Statement st(db_, "SELECT task, state FROM search_state WHERE run_id = ?");
  st.bind(1, run_id);
  std::map<std::string, std::string> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out[st.text(0)] = st.text(1);
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Result<std::vector<RunRecord>> KernelStore::runs() const {
  Statement st(db_,
               "SELECT run_id, kforge_version, command, seed, llm_models, host, started_at, coalesce(ended_at, '') "
               "FROM run ORDER BY started_at, rowid");
  std::vector<RunRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    RunRecord r;
    r.id = st.text(0), r.kforge_version = st.text(1), r.command = st.text(2), r.seed = st.text(3);
    r.llm_models = st.text(4), r.host = st.text(5), r.started_at = st.text(6), r.ended_at = st.text(7);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Status KernelStore::record_miss(const ProblemQuery& query, const std::string& device_key, std::int64_t count) {
  const std::string now = db::now_utc();
  auto s = transaction(db_, [&]() -> Status {
    if (auto p = insert_problem(db_, query); !p) return p;
    Statement st(db_, R"sql(
INSERT INTO miss VALUES(?1, ?2, ?3, ?4, ?4)
ON CONFLICT(problem_key, device_key) DO UPDATE SET count = count + excluded.count, last_seen = excluded.last_seen)sql");
    st.bind(1, problem_key(query)).bind(2, device_key).bind_int(3, count).bind(4, now);
    return st.step() == SQLITE_DONE ? Status() : Status(st.error());
  });
  if (!s) return make_error(ErrorKind::database, "{}: cannot record the miss: {}", path_, s.error().message);
  return {};
}

Status KernelStore::publish() {
  if (auto s = transaction(db_, [&] { return db::republish(db_); }); !s)
    return make_error(ErrorKind::database, "{}: cannot publish: {}", path_, s.error().message);
  return {};
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

int KernelStore::schema_version() const {
  return db::user_version(db_);
}

KernelStore::KernelStore(KernelStore&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

KernelStore::~KernelStore() {
  sqlite3_close(db_);
}

}  // namespace kforge
