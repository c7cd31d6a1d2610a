// Moving rows between libraries: import (and so merge), single-file export, verify.
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

namespace fs = std::filesystem;
using db::exec;
using db::Statement;

// A consistent copy of the library at `from` (WAL content included) in a new file at `to`, made
// through a read-only connection: the source is never written.
Status snapshot(const std::string& from, const std::string& to) {
  std::error_code ec;
  if (!fs::exists(from, ec)) return make_error(ErrorKind::io, "{}: no such kernel library", from);
  sqlite3 *source = nullptr, *copy = nullptr;
  Status s;
  if (sqlite3_open_v2(from.c_str(), &source, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    s = make_error(ErrorKind::io, "{}: cannot open: {}", from, sqlite3_errmsg(source));
  } else if (sqlite3_open_v2(to.c_str(), &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    s = make_error(ErrorKind::io, "{}: cannot create: {}", to, sqlite3_errmsg(copy));
  } else {
    sqlite3_busy_timeout(source, 30000);
    sqlite3_backup* backup = sqlite3_backup_init(copy, "main", source, "main");
    int rc = backup ? sqlite3_backup_step(backup, -1) : SQLITE_ERROR;
    if (backup) sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE)
      s = make_error(ErrorKind::database, "{}: cannot read it: {}", from,
                     backup ? sqlite3_errstr(rc) : sqlite3_errmsg(copy));
  }
  sqlite3_close(source);
  sqlite3_close(copy);
  return s;
}

// The columns of `table` in this connection's main schema, comma-separated, minus `skip`.
std::string columns(sqlite3* db, const std::string& table, const std::string& skip = "") {
  Statement st(db, fmt::format("SELECT name FROM pragma_table_info('{}') ORDER BY cid", table));
  std::string out;
  while (st.step() == SQLITE_ROW) {
    if (st.text(0) == skip) continue;
    if (!out.empty()) out += ", ";
    out += st.text(0);
  }
  return out;
}

struct TempFile {
  std::string path;
  ~TempFile() {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
  }
};

}  // namespace

Result<ImportSummary> KernelStore::import_from(const std::string& path) {
  std::error_code ec;
  if (fs::equivalent(path, path_, ec))
    return make_error(ErrorKind::invalid_input, "{}: cannot import a library into itself", path);
  // Work on a copy: it may need migrating, and ATTACH of a live file would see its writers.
  TempFile copy{(fs::temp_directory_path() / fmt::format("kforge-import-{}-{}.db", getpid(), db::now_utc())).string()};
  if (auto s = snapshot(path, copy.path); !s) return s.error();
  {
    auto other = KernelStore::open(copy.path);  // checks, and migrates an older schema
    if (!other) {
      std::string why = other.error().message;
      if (why.rfind(copy.path, 0) == 0) why = why.substr(copy.path.size() + 2);
      return make_error(ErrorKind::database, "{}: {}", path, why);
    }
    if (auto s = exec(other->db_, "PRAGMA journal_mode=DELETE"); !s) return s.error();
  }
  Statement attach(db_, "ATTACH DATABASE ? AS source");
  attach.bind(1, copy.path);
  if (attach.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot attach {}: {}", path_, path, attach.error().message);

  ImportSummary summary;
  auto copy_rows = [&](const std::string& sql, std::int64_t* added) -> Status {
    if (auto s = exec(db_, sql); !s) return s;
    if (added) *added = sqlite3_changes(db_);
    return {};
  };
  auto plain = [&](const std::string& table, std::int64_t* added) {
    const std::string cols = columns(db_, table);
    return copy_rows(fmt::format("INSERT OR IGNORE INTO main.{0}({1}) SELECT {1} FROM source.{0}", table, cols), added);
  };
  Status s = db::transaction(db_, [&]() -> Status {
    for (const char* table : {"device", "env", "run", "problem"})
      if (auto t = plain(table, nullptr); !t) return t;
    if (auto t = plain("kernel", &summary.kernels); !t) return t;
    if (auto t = plain("llm_call", &summary.llm_calls); !t) return t;
    const std::string evaluation = columns(db_, "evaluation", "evaluation_id");
    if (auto t = copy_rows(fmt::format("INSERT OR IGNORE INTO main.evaluation({0}) SELECT {0} FROM source.evaluation "
                                       "ORDER BY created_at, evaluation_id",
                                       evaluation),
                           &summary.evaluations);
        !t)
      return t;
    // Measurements follow their evaluation by its natural key to its id here.
    std::string measurement = columns(db_, "measurement", "evaluation_id"), selected;
    for (std::size_t start = 0; start < measurement.size();) {
      std::size_t end = std::min(measurement.find(", ", start), measurement.size());
      selected += (selected.empty() ? "m." : ", m.") + measurement.substr(start, end - start);
      start = end + 2;
    }
    if (auto t = copy_rows(fmt::format("INSERT OR IGNORE INTO main.measurement(evaluation_id, {}) "
                                       "SELECT here.evaluation_id, {} FROM source.measurement m "
                                       "JOIN source.evaluation e ON e.evaluation_id = m.evaluation_id "
                                       "JOIN main.evaluation here ON here.evaluation_key = e.evaluation_key",
                                       measurement, selected),
                           &summary.measurements);
        !t)
      return t;
    // A miss seen in both files is the same miss: keep the larger count, not the sum.
    if (auto t = exec(db_, R"sql(
INSERT INTO main.miss SELECT * FROM source.miss WHERE true
ON CONFLICT(problem_key, device_key) DO UPDATE SET count = max(count, excluded.count),
  first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen))sql");
        !t)
      return t;
    return db::republish(db_);
  });
  (void)exec(db_, "DETACH DATABASE source");
  if (!s) return make_error(ErrorKind::database, "{}: cannot import {}: {}", path_, path, s.error().message);
  return summary;
}

Status KernelStore::export_to(const std::string& out) const {
  std::error_code ec;
  if (fs::exists(out, ec)) return make_error(ErrorKind::invalid_input, "{}: exists; export writes a new file", out);
  Statement st(db_, "VACUUM INTO ?");
  st.bind(1, out);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot export to {}: {}", path_, out, st.error().message);
  return {};
}

Result<KernelStore::GcSummary> KernelStore::gc(int miss_days) {
  GcSummary summary;
  auto size = [&] {
    return db::scalar(db_, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
  };
  (void)exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  summary.bytes_before = size();
  auto remove = [&](const std::string& sql, std::int64_t& removed) -> Status {
    if (auto s = exec(db_, sql); !s) return s;
    removed = sqlite3_changes(db_);
    return {};
  };
  Status s = db::transaction(db_, [&]() -> Status {
    if (auto r =
            remove(fmt::format("DELETE FROM miss WHERE last_seen < strftime('%Y-%m-%dT%H:%M:%S', 'now', '-{} days')",
                               miss_days),
                   summary.misses);
        !r)
      return r;
    if (auto r = remove("DELETE FROM problem WHERE problem_key NOT IN (SELECT problem_key FROM measurement) "
                        "AND problem_key NOT IN (SELECT problem_key FROM miss)",
                        summary.problems);
        !r)
      return r;
    if (auto r = remove("DELETE FROM env WHERE env_key NOT IN (SELECT env_key FROM evaluation)", summary.envs); !r)
      return r;
    if (auto r = remove("DELETE FROM run WHERE run_id NOT IN (SELECT run_id FROM evaluation) AND run_id NOT IN "
                        "(SELECT run_id FROM kernel) AND run_id NOT IN (SELECT run_id FROM llm_call)",
                        summary.runs);
        !r)
      return r;
    return db::republish(db_);
  });
  if (s) s = exec(db_, "VACUUM");
  if (!s) return make_error(ErrorKind::database, "{}: gc: {}", path_, s.error().message);
  summary.bytes_after = size();
  return summary;
}

Result<std::vector<std::string>> KernelStore::verify() const {
  std::vector<std::string> problems;
  Statement integrity(db_, "PRAGMA integrity_check");
  while (integrity.step() == SQLITE_ROW)
    if (integrity.text(0) != "ok") problems.push_back("integrity: " + integrity.text(0));
  Statement st(db_,
               "SELECT DISTINCT b.kernel_key, k.kernel_key IS NULL, k.task, k.backend, k.params_json, k.source "
               "FROM best b LEFT JOIN kernel k USING(kernel_key) ORDER BY b.kernel_key");
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    if (st.integer(1)) {
      problems.push_back(fmt::format("best kernel {}: not in the kernel table", st.text(0)));
      continue;
    }
    const std::string hash = kernel_key(st.text(2), st.text(3), st.text(4), st.text(5));
    if (hash != st.text(0))
      problems.push_back(fmt::format("best kernel {}: its source hashes to {}", st.text(0), hash));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return problems;
}

}  // namespace kforge
