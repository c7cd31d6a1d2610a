#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "kernels_db/kernels_db.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

class KernelStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-db-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "k.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static KernelRecord kernel() {
    KernelRecord k;
    k.task = "llm/rmsnorm", k.backend = "cpu", k.entry = "rmsnorm_f32";
    k.source = "// @kforge entry: rmsnorm_f32\n...";
    k.params_json = R"({"BLOCK":256})", k.origin = "cpu_naive.cpp", k.operator_name = "seed";
    k.key = "abc123";
    return k;
  }
  static EvaluationRecord evaluation(const std::string& status = "ok") {
    EvaluationRecord e;
    e.device = "cpu:test";
    e.status = status;
    e.message = status == "ok" ? "" : "y[0] = nan (want 1)";
    e.atol = 1e-4;
    e.rtol = 2e-4;
    e.seed = 18446744073709551615ull;  // u64 max must survive
    MeasurementRecord check;
    check.shape = "M=1,N=1";
    check.correct = true;
    check.max_abs_error = 1e-7;
    MeasurementRecord bench;
    bench.shape = "M=1,N=4096";
    bench.bench = true;
    bench.correct = true;
    bench.n = 123;
    bench.min_us = 1, bench.median_us = 2, bench.p20_us = 1.5, bench.p80_us = 2.5;
    bench.mean_us = 2.1, bench.std_us = 0.3, bench.cv = 0.14, bench.gbps = 9.5, bench.gflops = 3.25;
    e.measurements = {check, bench};
    return e;
  }
  int count(const std::string& table) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &st, nullptr);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(KernelStoreTest, RoundTrip) {
  {
    auto store = KernelStore::open(path_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ(store->schema_version(), KernelStore::kSchemaVersion);
    ASSERT_TRUE(store->record(kernel(), evaluation()).ok());
  }
  auto store = KernelStore::open(path_, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto found = store->find_kernel("abc123");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->source, kernel().source);
  EXPECT_EQ((*found)->params_json, kernel().params_json);
  EXPECT_FALSE(store->find_kernel("nope")->has_value());

  auto list = store->list();
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  const KernelSummary& k = list->front();
  EXPECT_EQ(k.kernel.task, "llm/rmsnorm");
  EXPECT_EQ(k.kernel.origin, "cpu_naive.cpp");
  EXPECT_EQ(k.evaluations, 1);
  EXPECT_EQ(k.latest.status, "ok");
  EXPECT_EQ(k.latest.seed, 18446744073709551615ull);
  EXPECT_DOUBLE_EQ(k.latest.rtol, 2e-4);
  ASSERT_EQ(k.latest.measurements.size(), 2u);
  const MeasurementRecord& bench = k.latest.measurements[1];  // in the order recorded
  EXPECT_EQ(bench.shape, "M=1,N=4096");
  ASSERT_TRUE(bench.n.has_value());
  EXPECT_EQ(*bench.n, 123);
  EXPECT_DOUBLE_EQ(bench.median_us, 2);
  EXPECT_DOUBLE_EQ(bench.gflops, 3.25);
  EXPECT_FALSE(k.latest.measurements[0].n.has_value());
  EXPECT_TRUE(store->list({"llm/softmax", "", ""})->empty());
}

TEST_F(KernelStoreTest, AKernelIsStoredOnceAndEvaluatedManyTimes) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->record(kernel(), evaluation("ok")).ok());
  ASSERT_TRUE(store->record(kernel(), evaluation("incorrect")).ok());
  auto list = store->list();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().evaluations, 2);
  EXPECT_EQ(list->front().latest.status, "incorrect");
  EXPECT_EQ(count("kernel"), 1);
  EXPECT_EQ(count("measurement"), 4);
}

TEST_F(KernelStoreTest, AFailedWriteLeavesNothingPartial) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  auto bad = evaluation("not-a-status");  // violates the CHECK after the kernel row went in
  auto r = store->record(kernel(), bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot record the evaluation"), std::string::npos) << r.error().message;
  EXPECT_EQ(count("kernel"), 0);
  EXPECT_EQ(count("evaluation"), 0);
  // Duplicate shapes in one evaluation fail on the second measurement: all of it rolls back.
  auto duplicate = evaluation();
  duplicate.measurements.push_back(duplicate.measurements[0]);
  ASSERT_FALSE(store->record(kernel(), duplicate).ok());
  EXPECT_EQ(count("kernel"), 0);
  EXPECT_EQ(count("measurement"), 0);
}

TEST_F(KernelStoreTest, UnwritablePathIsAClearError) {
  auto store = KernelStore::open("/nonexistent-dir/k.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("/nonexistent-dir/k.db: cannot open the kernel library"), std::string::npos)
      << store.error().message;
}

TEST_F(KernelStoreTest, ReadOnlyOpenOfAMissingFileCreatesNothing) {
  auto store = KernelStore::open(path_, true);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("no such kernel library"), std::string::npos);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(KernelStoreTest, NotADatabaseIsRefusedAndLeftAlone) {
  std::ofstream(path_) << "this is not sqlite, and it is long enough to have a header page................";
  const auto before = fs::file_size(path_);
  auto store = KernelStore::open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("not a database"), std::string::npos) << store.error().message;
  EXPECT_EQ(fs::file_size(path_), before);
}

TEST_F(KernelStoreTest, NewerSchemaIsRefused) {
  ASSERT_TRUE(KernelStore::open(path_).ok());
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto store = KernelStore::open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("schema version 99 is newer than this kforge understands (4)"),
            std::string::npos)
      << store.error().message;
}

TEST_F(KernelStoreTest, ForeignSqliteDatabaseIsRefused) {
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto store = KernelStore::open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("not a kforge kernel library"), std::string::npos);
  EXPECT_EQ(count("sqlite_master"), 1) << "nothing was added to someone else's database";
}

TEST_F(KernelStoreTest, EmptyPathIsAClearError) {
  EXPECT_NE(KernelStore::open("").error().message.find("path is empty"), std::string::npos);
}

TEST_F(KernelStoreTest, LockedPastTheBusyTimeoutFailsCleanly) {
  auto store = KernelStore::open(path_, false, /*busy_timeout_ms=*/100);
  ASSERT_TRUE(store.ok());
  sqlite3* other = nullptr;
  sqlite3_open(path_.c_str(), &other);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = store->record(kernel(), evaluation());
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("database is locked"), std::string::npos) << r.error().message;
  EXPECT_EQ(count("kernel"), 0);
  ASSERT_TRUE(store->record(kernel(), evaluation()).ok()) << "the store works again once the lock is gone";
}

TEST_F(KernelStoreTest, LockedDatabaseWaitsForTheLock) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  // Another connection holds the write lock past our busy timeout: the write fails cleanly.
  sqlite3* other = nullptr;
  sqlite3_open(path_.c_str(), &other);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::thread release([other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  });
  auto r = store->record(kernel(), evaluation());  // waits for the lock (busy timeout), then writes
  release.join();
  sqlite3_close(other);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(count("evaluation"), 1);
}

}  // namespace

namespace {

TEST_F(KernelStoreTest, MigratesAVersion1FileKeepingItsRows) {
  // A library as kforge 0.1 wrote it (schema 1), with one evaluation.
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  const char* v1 = R"sql(
    CREATE TABLE kernel(kernel_key TEXT PRIMARY KEY, task TEXT NOT NULL, backend TEXT NOT NULL, entry TEXT NOT NULL,
      source TEXT NOT NULL, params_json TEXT NOT NULL, origin TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE evaluation(evaluation_id INTEGER PRIMARY KEY, kernel_key TEXT NOT NULL REFERENCES kernel(kernel_key),
      device TEXT NOT NULL, status TEXT NOT NULL CHECK(status IN
      ('ok','compile_error','incorrect','crash','timeout','runtime_error')), message TEXT NOT NULL, log TEXT NOT NULL,
      atol REAL NOT NULL, rtol REAL NOT NULL, seed TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
    CREATE TABLE measurement(evaluation_id INTEGER NOT NULL REFERENCES evaluation(evaluation_id), shape TEXT NOT NULL,
      kind TEXT NOT NULL CHECK(kind IN ('bench','check')), correct INTEGER NOT NULL, max_abs_error REAL,
      max_rel_error REAL, n INTEGER, min_us REAL, median_us REAL, p20_us REAL, p80_us REAL, mean_us REAL, std_us REAL,
      cv REAL, gbps REAL, gflops REAL, PRIMARY KEY(evaluation_id, shape));
    INSERT INTO kernel VALUES('k1', 'llm/rmsnorm', 'cpu', 'f', 'src', '{}', 'old.cpp', '2026-01-01T00:00:00Z');
    INSERT INTO evaluation VALUES(1, 'k1', 'cpu:x', 'ok', '', '', 1e-4, 1e-4, '5', '2026-01-01T00:00:00Z');
    INSERT INTO measurement(evaluation_id, shape, kind, correct, n, median_us) VALUES(1, 'N=1', 'bench', 1, 10, 3.5);
    PRAGMA user_version = 1;)sql";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(store->schema_version(), KernelStore::kSchemaVersion);
  auto list = store->list();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().kernel.origin, "old.cpp");
  ASSERT_EQ(list->front().latest.measurements.size(), 1u);
  EXPECT_DOUBLE_EQ(list->front().latest.measurements[0].median_us, 3.5);
  EXPECT_TRUE(store->record(kernel(), evaluation("rejected_cheat")).ok()) << "the status schema 2 added";
}

}  // namespace
