// KernelStore's connection: opening a library (the checks that refuse a file, WAL, busy waits,
// migration), its schema version and closing; and the UTC clock rows are stamped with.
#include <sqlite3.h>

#include <ctime>
#include <filesystem>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/schema.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

using db::exec;
using db::Statement;

}  // namespace

namespace db {

std::string now_utc() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buffer, static_cast<int>(ts.tv_nsec / 1000000));
}

}  // namespace db

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

int KernelStore::schema_version() const {
  return db::user_version(db_);
}

KernelStore::KernelStore(KernelStore&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

KernelStore::~KernelStore() {
  sqlite3_close(db_);
}

}  // namespace kforge
