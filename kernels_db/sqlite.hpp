// Internal to kernels_db: thin RAII over the SQLite C API, and the helpers every file of the
// library shares.
#pragma once

#include <sqlite3.h>

#include <string>

#include "common/common.hpp"

namespace kforge::db {

std::string now_utc();     // "2026-01-01T00:00:00.123Z": milliseconds, so a second's rows still order
std::string random_hex();  // 16 hex digits from std::random_device: the unique part of run ids and new keys

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
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
  // A positive number, or NULL for 0 (unknown).
  Statement& bind_positive(int i, double v) { return v > 0 ? bind(i, v) : bind_null(i); }
  // A count, or NULL for -1 (unknown).
  Statement& bind_count(int i, std::int64_t v) { return v >= 0 ? bind_int(i, v) : bind_null(i); }
  int step() { return rc_ = sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
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

inline Status exec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return {};
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

// The one-row, one-column answer of `sql` as an integer; -1 when there is none.
inline std::int64_t scalar(sqlite3* db, const std::string& sql) {
  Statement st(db, sql);
  return st.step() == SQLITE_ROW ? st.integer(0) : -1;
}

// Registers kforge_hash(text, ...) (content_hash of the arguments joined by newlines), used by
// migrations and merges to compute natural keys inside SQL.
void register_functions(sqlite3* db);

// Recomputes the `best` table inside the caller's transaction (the publication rule): all of it,
// or with `device_key`, only that device's rows for the problems in `problems_json` (an array).
Status republish(sqlite3* db, const std::string& device_key = "", const std::string& problems_json = "[]");

}  // namespace kforge::db
