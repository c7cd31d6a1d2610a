#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "kernels_db/kernels_db.hpp"

namespace kforge {
namespace {

// Migration N (1-based) takes the schema from version N-1 to N, in one transaction.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE kernel(
  kernel_key  TEXT PRIMARY KEY,      -- content hash of backend, source and params
  task        TEXT NOT NULL,         -- suite/name
  backend     TEXT NOT NULL,
  entry       TEXT NOT NULL,
  source      TEXT NOT NULL,
  params_json TEXT NOT NULL,
  origin      TEXT NOT NULL,
  created_at  TEXT NOT NULL);
CREATE TABLE evaluation(
  evaluation_id INTEGER PRIMARY KEY,
  kernel_key    TEXT NOT NULL REFERENCES kernel(kernel_key),
  device        TEXT NOT NULL,
  status        TEXT NOT NULL CHECK(status IN
                  ('ok','compile_error','incorrect','crash','timeout','runtime_error')),
  message       TEXT NOT NULL,
  log           TEXT NOT NULL,
  atol REAL NOT NULL, rtol REAL NOT NULL,
  seed          TEXT NOT NULL,       -- a u64, kept exact as text
  created_at    TEXT NOT NULL);
CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
CREATE TABLE measurement(
  evaluation_id INTEGER NOT NULL REFERENCES evaluation(evaluation_id),
  shape   TEXT NOT NULL,
  kind    TEXT NOT NULL CHECK(kind IN ('bench','check')),
  correct INTEGER NOT NULL,
  max_abs_error REAL, max_rel_error REAL,
  n INTEGER, min_us REAL, median_us REAL, p20_us REAL, p80_us REAL,
  mean_us REAL, std_us REAL, cv REAL, gbps REAL, gflops REAL,
  PRIMARY KEY(evaluation_id, shape));
)sql",
    // 2: the evaluator's rejected_cheat status. SQLite cannot change a CHECK in place: rebuild.
    R"sql(
CREATE TABLE evaluation_v2(
  evaluation_id INTEGER PRIMARY KEY,
  kernel_key    TEXT NOT NULL REFERENCES kernel(kernel_key),
  device        TEXT NOT NULL,
  status        TEXT NOT NULL CHECK(status IN
                  ('ok','compile_error','incorrect','crash','timeout','runtime_error','rejected_cheat')),
  message       TEXT NOT NULL,
  log           TEXT NOT NULL,
  atol REAL NOT NULL, rtol REAL NOT NULL,
  seed          TEXT NOT NULL,
  created_at    TEXT NOT NULL);
INSERT INTO evaluation_v2 SELECT * FROM evaluation;
DROP TABLE evaluation;
ALTER TABLE evaluation_v2 RENAME TO evaluation;
CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
)sql",
    // 3: the baseline timed beside the candidate, and the speedup over it.
    R"sql(
ALTER TABLE evaluation ADD COLUMN baseline TEXT NOT NULL DEFAULT '';
ALTER TABLE evaluation ADD COLUMN speedup REAL;
ALTER TABLE measurement ADD COLUMN baseline_median_us REAL;
ALTER TABLE measurement ADD COLUMN speedup REAL;
)sql",
};
constexpr int kMigrationCount = sizeof kMigrations / sizeof kMigrations[0];
static_assert(kMigrationCount == KernelStore::kSchemaVersion);

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool prepared() const { return rc_ == SQLITE_OK; }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& bind_int(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  int step() { return rc_ = sqlite3_step(stmt_); }
  std::string text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  Error error() const { return make_error(ErrorKind::database, "{}", sqlite3_errmsg(db_)); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

Status exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return {};
  Error e = make_error(ErrorKind::database, "{}", message ? message : sqlite3_errmsg(db));
  sqlite3_free(message);
  return e;
}

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back on any error.
template <class Body>
Status transaction(sqlite3* db, Body&& body) {
  if (auto s = exec(db, "BEGIN IMMEDIATE"); !s) return s;
  Status s = body();
  if (s) s = exec(db, "COMMIT");
  if (!s) (void)exec(db, "ROLLBACK");  // the first error is the one to report
  return s;
}

int user_version(sqlite3* db) {
  Statement st(db, "PRAGMA user_version");
  return st.step() == SQLITE_ROW ? static_cast<int>(st.integer(0)) : -1;
}

void load_measurements(sqlite3* db, EvaluationRecord& e) {
  Statement st(db,
               "SELECT shape, kind, correct, max_abs_error, max_rel_error, n, min_us, median_us, p20_us, "
               "p80_us, mean_us, std_us, cv, gbps, gflops, baseline_median_us, speedup FROM measurement "
               "WHERE evaluation_id = ? "
               "ORDER BY rowid");
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
    e.measurements.push_back(std::move(m));
  }
}

}  // namespace

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
  sqlite3_busy_timeout(db, busy_timeout_ms);
  auto fail = [&](const Error& e) { return make_error(ErrorKind::database, "{}: {}", path, e.message); };

  // quick_check also tells a non-database file ("file is not a database") from a real one.
  {
    Statement check(db, "PRAGMA quick_check");
    if (!check.prepared() || check.step() != SQLITE_ROW) return fail(check.error());
    if (check.text(0) != "ok") return make_error(ErrorKind::database, "{}: corrupt: {}", path, check.text(0));
  }
  const int version = user_version(db);
  // Version 0 is a new, empty file; a version-0 file with tables belongs to someone else.
  if (version == 0) {
    Statement tables(db, "SELECT count(*) FROM sqlite_master");
    if (tables.step() == SQLITE_ROW && tables.integer(0) > 0)
      return make_error(ErrorKind::database, "{}: an SQLite database, but not a kforge kernel library", path);
  }
  if (version > kSchemaVersion)
    return make_error(ErrorKind::database,
                      "{}: schema version {} is newer than this kforge understands ({}); use a newer kforge", path,
                      version, kSchemaVersion);
  if (read_only) {
    if (version < kSchemaVersion)
      return make_error(ErrorKind::database, "{}: schema version {} needs migrating; open it read-write once", path,
                        version);
    return store;
  }
  if (auto s = exec(db, "PRAGMA journal_mode=WAL"); !s) return fail(s.error());
  // Migrations rebuild tables, which foreign-key enforcement would refuse mid-way; it is turned
  // on once the schema is current.
  for (int v = version; v < kSchemaVersion; ++v) {
    auto s = transaction(db, [&]() -> Status {
      if (user_version(db) != v) return {};  // another process migrated meanwhile
      if (auto m = exec(db, kMigrations[v]); !m) return m;
      return exec(db, fmt::format("PRAGMA user_version = {}", v + 1).c_str());
    });
    if (!s)
      return make_error(ErrorKind::database, "{}: migration to schema {} failed: {}", path, v + 1, s.error().message);
  }
  (void)exec(db, "PRAGMA foreign_keys=ON");
  return store;
}

Result<std::int64_t> KernelStore::record(const KernelRecord& kernel, const EvaluationRecord& evaluation) {
  std::int64_t evaluation_id = 0;
  const std::string now = now_utc();
  auto s = transaction(db_, [&]() -> Status {
    Statement k(db_,
                "INSERT OR IGNORE INTO kernel(kernel_key, task, backend, entry, source, params_json, origin, "
                "created_at) VALUES(?,?,?,?,?,?,?,?)");
    k.bind(1, kernel.key).bind(2, kernel.task).bind(3, kernel.backend).bind(4, kernel.entry);
    k.bind(5, kernel.source).bind(6, kernel.params_json).bind(7, kernel.origin).bind(8, now);
    if (k.step() != SQLITE_DONE) return k.error();

    Statement e(db_,
                "INSERT INTO evaluation(kernel_key, device, status, message, log, atol, rtol, seed, created_at, "
                "baseline, speedup) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    e.bind(1, kernel.key).bind(2, evaluation.device).bind(3, evaluation.status).bind(4, evaluation.message);
    e.bind(5, evaluation.log).bind(6, evaluation.atol).bind(7, evaluation.rtol);
    e.bind(8, std::to_string(evaluation.seed)).bind(9, now).bind(10, evaluation.baseline);
    if (evaluation.speedup > 0) e.bind(11, evaluation.speedup);
    else e.bind_null(11);
    if (e.step() != SQLITE_DONE) return e.error();
    evaluation_id = sqlite3_last_insert_rowid(db_);

    for (const auto& m : evaluation.measurements) {
      Statement st(db_,
                   "INSERT INTO measurement(evaluation_id, shape, kind, correct, max_abs_error, max_rel_error, n, "
                   "min_us, median_us, p20_us, p80_us, mean_us, std_us, cv, gbps, gflops, baseline_median_us, speedup) "
                   "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      st.bind_int(1, evaluation_id).bind(2, m.shape).bind(3, std::string(m.bench ? "bench" : "check"));
      st.bind_int(4, m.correct).bind(5, m.max_abs_error).bind(6, m.max_rel_error);
      if (m.n) {
        st.bind_int(7, *m.n).bind(8, m.min_us).bind(9, m.median_us).bind(10, m.p20_us).bind(11, m.p80_us);
        st.bind(12, m.mean_us).bind(13, m.std_us).bind(14, m.cv).bind(15, m.gbps).bind(16, m.gflops);
      } else {
        for (int i = 7; i <= 16; ++i) st.bind_null(i);
      }
      if (m.speedup > 0) st.bind(17, m.baseline_median_us).bind(18, m.speedup);
      else st.bind_null(17).bind_null(18);
      if (st.step() != SQLITE_DONE) return st.error();
    }
    return {};
  });
  if (!s) return make_error(ErrorKind::database, "{}: cannot record the evaluation: {}", path_, s.error().message);
  return evaluation_id;
}

Result<std::vector<KernelSummary>> KernelStore::list(const std::string& task) const {
  Statement st(db_,
               "SELECT k.kernel_key, k.task, k.backend, k.entry, k.params_json, k.origin, e.evaluation_id, "
               "e.device, e.status, e.message, e.atol, e.rtol, e.seed, e.created_at, e.baseline, e.speedup, "
               "(SELECT count(*) FROM evaluation WHERE kernel_key = k.kernel_key) "
               "FROM kernel k JOIN evaluation e ON e.evaluation_id = "
               "  (SELECT max(evaluation_id) FROM evaluation WHERE kernel_key = k.kernel_key) "
               "WHERE ?1 = '' OR k.task = ?1 ORDER BY e.evaluation_id DESC");
  if (!st.prepared()) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  st.bind(1, task);
  std::vector<KernelSummary> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    KernelSummary s;
    s.kernel = {st.text(0), st.text(1), st.text(2), st.text(3), "", st.text(4), st.text(5)};
    s.latest.id = st.integer(6);
    s.latest.kernel_key = s.kernel.key;
    s.latest.device = st.text(7);
    s.latest.status = st.text(8);
    s.latest.message = st.text(9);
    s.latest.atol = st.real(10);
    s.latest.rtol = st.real(11);
    s.latest.seed = std::strtoull(st.text(12).c_str(), nullptr, 10);
    s.latest.created_at = st.text(13);
    s.latest.baseline = st.text(14);
    s.latest.speedup = st.real(15);
    s.evaluations = static_cast<int>(st.integer(16));
    load_measurements(db_, s.latest);
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Result<std::optional<KernelRecord>> KernelStore::find_kernel(const std::string& key) const {
  Statement st(db_,
               "SELECT kernel_key, task, backend, entry, source, params_json, origin FROM kernel WHERE kernel_key = ?");
  st.bind(1, key);
  int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<KernelRecord>();
  if (rc != SQLITE_ROW) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return std::optional<KernelRecord>(
      KernelRecord{st.text(0), st.text(1), st.text(2), st.text(3), st.text(4), st.text(5), st.text(6)});
}

int KernelStore::schema_version() const {
  return user_version(db_);
}

KernelStore::KernelStore(KernelStore&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

KernelStore::~KernelStore() {
  sqlite3_close(db_);
}

}  // namespace kforge
