#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
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

TEST_F(KernelStoreTest, TheCompilersReportIsFiledWithTheEvaluationUnknownStaysUnknown) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EvaluationRecord gpu = evaluation("runtime_error");  // compiled, then found no device
  gpu.registers = 40, gpu.spill_bytes = 0, gpu.shared_bytes = 1024, gpu.code_bytes = 7000;
  ASSERT_TRUE(store->record(kernel(), evaluation()).ok());
  ASSERT_TRUE(store->record(kernel(), gpu).ok());
  auto evaluations = store->evaluations(kernel().key);
  ASSERT_TRUE(evaluations.ok()) << evaluations.error().message;
  ASSERT_EQ(evaluations->size(), 2u);
  const EvaluationRecord& cpu = (*evaluations)[0];
  EXPECT_EQ(cpu.registers, -1);
  EXPECT_EQ(cpu.spill_bytes, -1);
  EXPECT_EQ(cpu.shared_bytes, -1);
  EXPECT_EQ(cpu.code_bytes, 0);
  const EvaluationRecord& back = (*evaluations)[1];
  EXPECT_EQ(back.registers, 40);
  EXPECT_EQ(back.spill_bytes, 0) << "no spills is known, not unknown";
  EXPECT_EQ(back.shared_bytes, 1024);
  EXPECT_EQ(back.code_bytes, 7000);
  EXPECT_EQ(store->list()->front().latest.registers, 40);
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
  EXPECT_NE(store.error().message.find(
                fmt::format("schema version 99 is newer than this kforge understands ({})", KernelStore::kSchemaVersion)),
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

namespace {

// A library written by the schema-3 code: one kernel evaluated twice (ok, different seeds) and a
// failed one.
const char* kVersion3 = R"sql(
    CREATE TABLE kernel(kernel_key TEXT PRIMARY KEY, task TEXT NOT NULL, backend TEXT NOT NULL, entry TEXT NOT NULL,
      source TEXT NOT NULL, params_json TEXT NOT NULL, origin TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE evaluation(evaluation_id INTEGER PRIMARY KEY, kernel_key TEXT NOT NULL REFERENCES kernel(kernel_key),
      device TEXT NOT NULL, status TEXT NOT NULL CHECK(status IN
      ('ok','compile_error','incorrect','crash','timeout','runtime_error','rejected_cheat')), message TEXT NOT NULL,
      log TEXT NOT NULL, atol REAL NOT NULL, rtol REAL NOT NULL, seed TEXT NOT NULL, created_at TEXT NOT NULL,
      baseline TEXT NOT NULL DEFAULT '', speedup REAL);
    CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
    CREATE TABLE measurement(evaluation_id INTEGER NOT NULL REFERENCES evaluation(evaluation_id), shape TEXT NOT NULL,
      kind TEXT NOT NULL CHECK(kind IN ('bench','check')), correct INTEGER NOT NULL, max_abs_error REAL,
      max_rel_error REAL, n INTEGER, min_us REAL, median_us REAL, p20_us REAL, p80_us REAL, mean_us REAL, std_us REAL,
      cv REAL, gbps REAL, gflops REAL, baseline_median_us REAL, speedup REAL, PRIMARY KEY(evaluation_id, shape));
    INSERT INTO kernel VALUES('k1', 'llm/gemm_flat', 'cpu', 'f', 'src', '{}', 'cpu_tiled.cpp', '2026-01-01T00:00:00Z');
    INSERT INTO kernel VALUES('k2', 'llm/gemm_flat', 'cpu', 'f', 'bad', '{}', 'cpu_bad.cpp', '2026-01-01T00:00:00Z');
    INSERT INTO evaluation VALUES(1, 'k1', 'cpu:Old CPU', 'ok', '', '', 1e-3, 1e-3, '5', '2026-01-01T00:00:01Z',
      'cpu_naive.cpp', 2.0);
    INSERT INTO evaluation VALUES(2, 'k1', 'cpu:Old CPU', 'ok', '', '', 1e-3, 1e-3, '6', '2026-01-01T00:00:02Z',
      'cpu_naive.cpp', 2.1);
    INSERT INTO evaluation VALUES(3, 'k2', 'cpu:Old CPU', 'incorrect', 'C[0] wrong', '', 1e-3, 1e-3, '7',
      '2026-01-01T00:00:03Z', '', NULL);
    INSERT INTO measurement(evaluation_id, shape, kind, correct, n, median_us, baseline_median_us, speedup)
      VALUES(1, 'K=4096,M=8,N=2048', 'bench', 1, 20, 30.0, 60.0, 2.0), (2, 'K=4096,M=8,N=2048', 'bench', 1, 20, 29.0, 61.0, 2.1),
            (1, 'K=1,M=1,N=1', 'check', 1, NULL, NULL, NULL, NULL), (3, 'K=4096,M=8,N=2048', 'check', 0, NULL, NULL, NULL, NULL);
    PRAGMA user_version = 3;)sql";

// An evaluation of one timed bench shape.
EvaluationRecord timed(const std::string& shape, double median_us, bool verified = true, int n = 50,
                       const std::string& device = "cpu:test") {
  EvaluationRecord e;
  e.device = device;
  e.status = "ok";
  e.verified = verified;
  e.dynamic_dim = "M";
  e.seed = static_cast<std::uint64_t>(median_us * 1000) + n;
  MeasurementRecord m;
  m.shape = shape;
  m.bench = m.correct = true;
  m.n = n;
  m.median_us = median_us;
  m.speedup = 2, m.baseline_median_us = 2 * median_us;
  m.floor_us = median_us / 4, m.roofline_pct = 25;
  e.measurements = {m};
  return e;
}

KernelRecord named(const std::string& source, const std::string& task = "llm/gemm_flat") {
  KernelRecord k;
  k.task = task, k.backend = "cpu", k.entry = "f", k.source = source, k.params_json = "{}", k.origin = source + ".cpp";
  k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
  return k;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(KernelStoreTest, MigratesAVersion3FileKeepingItsRowsAndPublishing) {
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  ASSERT_EQ(sqlite3_exec(db, kVersion3, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(store->schema_version(), KernelStore::kSchemaVersion);
  auto list = store->list();
  ASSERT_EQ(list->size(), 2u);
  auto history = store->evaluations("k1");
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].device, "cpu:Old CPU");
  EXPECT_EQ((*history)[0].key.size(), 32u) << "old evaluations get a natural key";
  EXPECT_NE((*history)[0].key, (*history)[1].key);
  EXPECT_EQ((*history)[0].dynamic_dim, "M");
  EXPECT_DOUBLE_EQ((*history)[1].measurements[0].median_us, 29.0);
  // Two independent ok evaluations count as re-verified: the faster one is published.
  auto best = store->best();
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ((*best)[0].problem_key, "llm/gemm_flat/v1/f32/K=4096,N=2048/M=8");
  EXPECT_EQ((*best)[0].kernel_key, "k1");
  EXPECT_DOUBLE_EQ((*best)[0].median_us, 29.0);
  EXPECT_EQ((*best)[0].device_key, "cpu:Old CPU");
  EXPECT_EQ(count("device"), 1);
  EXPECT_EQ(count("problem"), 2);
  // New rows go in beside the old ones.
  ASSERT_TRUE(store->record(named("new"), timed("K=4096,M=8,N=2048", 10, true, 50, "cpu:Old CPU")).ok());
  EXPECT_EQ(store->best()->at(0).kernel_key, named("new").key);
  EXPECT_TRUE(store->verify()->empty());
}

TEST_F(KernelStoreTest, PublishesOnlyVerifiedTimedCorrectMeasurements) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  const std::string shape = "K=4096,M=8,N=2048";
  ASSERT_TRUE(store->record(named("unverified"), timed(shape, 1, false)).ok());
  ASSERT_TRUE(store->record(named("few_samples"), timed(shape, 2, true, 3)).ok());
  EXPECT_TRUE(store->best()->empty()) << "neither counts";
  ASSERT_TRUE(store->record(named("slow"), timed(shape, 20)).ok());
  ASSERT_TRUE(store->record(named("fast"), timed(shape, 10)).ok());
  ASSERT_EQ(store->best()->size(), 1u);
  EXPECT_EQ(store->best()->at(0).kernel_key, named("fast").key);
  EXPECT_EQ(store->best()->at(0).samples, 50);
  EXPECT_DOUBLE_EQ(store->best()->at(0).roofline_pct, 25);
  // A later evaluation finds "fast" wrong: it is no longer published; "slow" is.
  auto wrong = timed(shape, 10);
  wrong.status = "incorrect";
  wrong.measurements[0].correct = false;
  ASSERT_TRUE(store->record(named("fast"), wrong).ok());
  EXPECT_EQ(store->best()->at(0).kernel_key, named("slow").key);
  // The unverified kernel, evaluated again with another seed, is re-verified: it wins.
  auto again = timed(shape, 1.5, false);
  ASSERT_TRUE(store->record(named("unverified"), again).ok());
  EXPECT_EQ(store->best()->at(0).kernel_key, named("unverified").key);
  EXPECT_DOUBLE_EQ(store->best()->at(0).median_us, 1);
}

TEST_F(KernelStoreTest, ANewEnvFlagsOlderRowsStaleWithoutDeletingThem) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  auto old_env = timed("M=8,N=64", 10);
  old_env.env.compiler = "g++ 12";
  ASSERT_TRUE(store->record(named("a"), old_env).ok());
  auto new_env = timed("M=16,N=64", 12);
  new_env.env.compiler = "g++ 13";
  ASSERT_TRUE(store->record(named("b"), new_env).ok());
  auto best = store->best();
  ASSERT_EQ(best->size(), 2u);
  for (const auto& b : *best) EXPECT_EQ(b.stale, b.kernel_key == named("a").key) << b.problem_key;
  auto stats = store->stats();
  EXPECT_EQ(stats->stale_best, 1);
}

TEST_F(KernelStoreTest, LookupFallsBackExactNearestDynNearestDeviceThenMissRecorded) {
  {
    auto store = KernelStore::open(path_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(store->record(named("m8"), timed("K=4096,M=8,N=2048", 10, true, 50, "nvidia:sm_90:132")).ok());
    ASSERT_TRUE(store->record(named("m64"), timed("K=4096,M=64,N=2048", 40, true, 50, "nvidia:sm_90:132")).ok());
    ASSERT_TRUE(store->record(named("n4k"), timed("K=4096,M=8,N=4096", 15, true, 50, "nvidia:sm_90:114")).ok());
    ASSERT_TRUE(store->record(named("n4k_far"), timed("K=4096,M=8,N=4096", 5, true, 50, "nvidia:sm_90:66")).ok());
    ASSERT_TRUE(store->record(named("other_arch"), timed("K=1,M=8,N=1", 5, true, 50, "nvidia:sm_80:108")).ok());
  }
  const auto before = file_bytes(path_);
  auto library = BestKernels::load(path_, "nvidia:sm_90:132");
  ASSERT_TRUE(library.ok()) << library.error().message;
  EXPECT_EQ(file_bytes(path_), before) << "a reader writes nothing";
  EXPECT_EQ(library->size(), 4u) << "other archs are not loaded";
  auto q = [](const std::string& shape) { return problem_query("llm/gemm_flat", "f32", shape, "M"); };

  auto exact = library->resolve(q("K=4096,M=64,N=2048"));
  EXPECT_EQ(exact.match, BestKernels::Match::exact);
  EXPECT_EQ(exact.entry->best.kernel_key, named("m64").key);
  ASSERT_NE(library->kernel(exact.entry->best.kernel_key), nullptr);
  EXPECT_EQ(library->kernel(exact.entry->best.kernel_key)->source, "m64");

  auto near = library->resolve(q("K=4096,M=24,N=2048"));
  EXPECT_EQ(near.match, BestKernels::Match::nearest_dyn);
  EXPECT_EQ(near.entry->best.kernel_key, named("m8").key) << "|24-8| < |24-64|";
  EXPECT_EQ(library->resolve(q("K=4096,M=50,N=2048")).entry->best.kernel_key, named("m64").key);

  auto device = library->resolve(q("K=4096,M=8,N=4096"));
  EXPECT_EQ(device.match, BestKernels::Match::nearest_device);
  EXPECT_EQ(device.entry->best.kernel_key, named("n4k").key) << "114 SMs is nearer 132 than 66, though slower";

  auto none = library->resolve(q("K=1,M=8,N=1"));
  EXPECT_EQ(none.match, BestKernels::Match::none);
  EXPECT_EQ(none.entry, nullptr);
  (void)library->resolve(q("K=1,M=8,N=1"));
  ASSERT_TRUE(library->flush_misses().ok());
  auto store = KernelStore::open(path_, true);
  auto misses = store->misses();
  ASSERT_EQ(misses->size(), 1u);
  EXPECT_EQ(misses->at(0).first.problem_key, "llm/gemm_flat/v1/f32/K=1,N=1/M=8");
  EXPECT_EQ(misses->at(0).first.device_key, "nvidia:sm_90:132");
  EXPECT_EQ(misses->at(0).second, 2);
}

TEST_F(KernelStoreTest, MergeOfOverlappingLibrariesHasNoDuplicatesAndTheRightBest) {
  const std::string a = (dir_ / "a.db").string(), b = (dir_ / "b.db").string(), c = (dir_ / "c.db").string();
  const std::string shape = "K=4096,M=8,N=2048";
  {
    auto sa = KernelStore::open(a);
    ASSERT_TRUE(sa->record(named("shared"), timed(shape, 20)).ok());
    ASSERT_TRUE(sa->record(named("only_a"), timed(shape, 30)).ok());
    // b starts as a copy of a (the same evaluations, the same keys), then goes its own way.
    ASSERT_TRUE(sa->export_to(b).ok());
    EXPECT_FALSE(sa->export_to(b).ok()) << "export never overwrites";
  }
  {
    auto sb = KernelStore::open(b);
    ASSERT_TRUE(sb.ok()) << sb.error().message;
    ASSERT_TRUE(sb->record(named("shared"), timed(shape, 19)).ok());
    ASSERT_TRUE(sb->record(named("only_b"), timed(shape, 10)).ok());
    ProblemQuery q = problem_query("llm/gemm_flat", "f32", "K=1,M=1,N=1", "M");
    ASSERT_TRUE(sb->record_miss(q, "cpu:test", 3).ok());
  }
  auto merged = KernelStore::open(c);
  ASSERT_TRUE(merged.ok());
  auto from_a = merged->import_from(a);
  ASSERT_TRUE(from_a.ok()) << from_a.error().message;
  EXPECT_EQ(from_a->kernels, 2);
  EXPECT_EQ(from_a->evaluations, 2);
  auto from_b = merged->import_from(b);
  ASSERT_TRUE(from_b.ok()) << from_b.error().message;
  EXPECT_EQ(from_b->kernels, 1) << "only_b";
  EXPECT_EQ(from_b->evaluations, 2) << "shared's second evaluation and only_b's";
  EXPECT_EQ(from_b->measurements, 2);
  auto again = merged->import_from(b);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kernels + again->evaluations + again->measurements, 0) << "importing twice adds nothing";

  path_ = c;
  EXPECT_EQ(count("kernel"), 3);
  EXPECT_EQ(count("evaluation"), 4);
  EXPECT_EQ(count("measurement"), 4);
  EXPECT_EQ(count("miss WHERE count = 3"), 1);
  auto best = merged->best();
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ(best->at(0).kernel_key, named("only_b").key);
  EXPECT_TRUE(merged->verify()->empty());

  // A file that is not a library, or from a newer kforge, is refused and left alone.
  const std::string junk = (dir_ / "junk.db").string();
  std::ofstream(junk) << std::string(4096, 'x');
  auto refused = merged->import_from(junk);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("junk.db"), std::string::npos) << refused.error().message;
  EXPECT_EQ(file_bytes(junk), std::string(4096, 'x'));
  sqlite3* db = nullptr;
  sqlite3_open(a.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto newer = merged->import_from(a);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.error().message.find("schema version 99 is newer"), std::string::npos) << newer.error().message;
  EXPECT_EQ(count("kernel"), 3);
}

TEST_F(KernelStoreTest, ATruncatedLibraryIsRefusedAndNeverModified) {
  {
    auto store = KernelStore::open(path_);
    for (int i = 0; i < 40; ++i)
      ASSERT_TRUE(store->record(named("k" + std::to_string(i)), timed("M=8,N=64", 1 + i)).ok());
  }
  std::string bytes = file_bytes(path_);
  ASSERT_GT(bytes.size(), 8192u);
  bytes.resize(bytes.size() / 2);
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;
  for (bool read_only : {false, true}) {
    auto store = KernelStore::open(path_, read_only);
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.error().message.find(path_), std::string::npos) << store.error().message;
    EXPECT_EQ(file_bytes(path_), bytes);
  }
  EXPECT_FALSE(BestKernels::load(path_, "cpu:test").ok());
}

TEST_F(KernelStoreTest, VerifyFindsAPublishedKernelWhoseSourceChanged) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store->record(named("good"), timed("M=8,N=64", 3)).ok());
  EXPECT_TRUE(store->verify()->empty());
  sqlite3* db = nullptr;
  sqlite3_open(path_.c_str(), &db);
  sqlite3_exec(db, "UPDATE kernel SET source = 'tampered'", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto problems = store->verify();
  ASSERT_EQ(problems->size(), 1u);
  EXPECT_NE(problems->at(0).find("its source hashes to"), std::string::npos) << problems->at(0);
}

TEST_F(KernelStoreTest, AWriterKilledMidTransactionLeavesEveryCommittedRow) {
  ASSERT_TRUE(KernelStore::open(path_).ok());
  const pid_t child = fork();
  if (child == 0) {
    auto store = KernelStore::open(path_);
    for (int i = 0; i < 5; ++i) (void)store->record(named("c" + std::to_string(i)), timed("M=8,N=64", 1 + i));
    sqlite3* db = nullptr;
    sqlite3_open(path_.c_str(), &db);
    sqlite3_exec(db,
                 "BEGIN IMMEDIATE; DELETE FROM measurement; INSERT INTO kernel(kernel_key, task, backend, entry, "
                 "source, params_json, origin, created_at) VALUES('half', 't', 'cpu', 'f', 's', '{}', 'o', 'x')",
                 nullptr, nullptr, nullptr);
    raise(SIGKILL);  // mid-transaction, nothing committed
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(count("kernel"), 5);
  EXPECT_EQ(count("measurement"), 5);
  EXPECT_EQ(store->best()->size(), 1u);
  EXPECT_TRUE(store->verify()->empty());
}

TEST_F(KernelStoreTest, TwoProcessesWriting500EvaluationsEachLoseNothing) {
  ASSERT_TRUE(KernelStore::open(path_).ok());
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    const pid_t child = fork();
    if (child == 0) {
      auto store = KernelStore::open(path_);
      int failures = !store.ok();
      for (int i = 0; i < 500 && store.ok(); ++i) {
        auto e = timed("M=8,N=64", 1 + i, i % 2);
        failures += !store->record(named(fmt::format("p{}_{}", p, i)), e).ok();
      }
      _exit(failures ? 1 : 0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto store = KernelStore::open(path_);
  EXPECT_EQ(count("evaluation"), 1000);
  EXPECT_EQ(count("measurement"), 1000);
  EXPECT_TRUE(store->verify()->empty());
}

}  // namespace

namespace {

TEST_F(KernelStoreTest, AReaderInTheMiddleOfATransactionNeverBlocksAWriter) {
  auto store = KernelStore::open(path_, false, /*busy_timeout_ms=*/100);
  ASSERT_TRUE(store->record(named("first"), timed("M=8,N=64", 3)).ok());
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM best;", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = store->record(named("second"), timed("M=8,N=64", 2));  // well inside 100 ms, or it fails
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(store->best()->at(0).kernel_key, named("second").key);
}

}  // namespace

namespace {

TEST_F(KernelStoreTest, GcKeepsEveryKernelEvaluationAndMeasurementAndLlmCall) {
  auto store = KernelStore::open(path_);
  auto e = timed("M=8,N=64", 3);
  e.env.compiler = "g++ 13";
  ASSERT_TRUE(store->record(named("a"), e).ok());
  LlmCallRecord call;
  call.model = "m", call.request = "q", call.response = "a", call.status = "ok",
  call.created_at = "2026-01-01T00:00:00Z";
  ASSERT_TRUE(store->record_llm_call(call).ok());
  ASSERT_TRUE(store->record_llm_call(call).ok()) << "the same call twice is one row";
  auto g = store->gc();
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->envs, 1) << "the 'unknown' env nobody uses";
  EXPECT_EQ(count("kernel"), 1);
  EXPECT_EQ(count("measurement"), 1);
  EXPECT_EQ(count("llm_call"), 1);
  EXPECT_EQ(store->best()->size(), 1u);
}

}  // namespace

namespace {

TEST_F(KernelStoreTest, SearchStateIsSavedWithItsEvaluationAndLlmCallsReadBackInOrder) {
  auto store = KernelStore::open(path_);
  ASSERT_TRUE(store.ok());
  RunRecord run;
  run.id = "r1", run.command = "search";
  ASSERT_TRUE(store->record_run(run).ok());
  SearchStateRecord state{"r1", "llm/gemv", R"({"evaluations":1})"};
  ASSERT_TRUE(store->record(named("a"), timed("M=8,N=64", 3), &state).ok());
  ASSERT_TRUE(store->save_search_state("r1", "", R"({"evals":5})").ok());
  auto states = store->search_states("r1");
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ(states->at("llm/gemv"), R"({"evaluations":1})");
  EXPECT_EQ(states->at(""), R"({"evals":5})");
  EXPECT_TRUE(store->search_states("other")->empty());

  for (int attempt : {1, 2}) {
    LlmCallRecord call;
    call.run_id = "r1", call.model = "m", call.request = "q", call.request_hash = "h", call.attempt = attempt;
    call.status = attempt == 1 ? "http_error" : "ok", call.http_status = attempt == 1 ? 429 : 200;
    call.created_at = "2026-01-01T00:00:00Z";
    ASSERT_TRUE(store->record_llm_call(call).ok());
  }
  auto calls = store->llm_calls("r1");
  ASSERT_TRUE(calls.ok());
  ASSERT_EQ(calls->size(), 2u) << "two attempts of one request are two rows";
  EXPECT_EQ((*calls)[0].http_status, 429);
  EXPECT_EQ((*calls)[1].status, "ok");
  EXPECT_EQ((*calls)[1].request_hash, "h");
  auto runs = store->runs();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front().command, "search");
  EXPECT_TRUE(runs->front().ended_at.empty());
}

}  // namespace
