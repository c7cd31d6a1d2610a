// Kernel library speed: resolve against the in-memory best table of a library with thousands of
// published rows, beside two baselines timed in the same run: one unordered_map lookup of a key
// of the same length (the floor any hash-table dispatch pays) and the same question asked of
// SQLite with a prepared statement (what a dispatch that does not cache would pay). Also the
// build (evaluations recorded a second) and open + load of the library. Issue 6 targets: resolve
// hit <= 200 ns, >= 5,000 inserts a second, open + load of 10,000 kernels <= 200 ms.
//
//   build/bench/bench_kernels_db [--rows N]     (default 4000; prints the ratios at the end)
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "kernels_db/kernels_db.hpp"

namespace fs = std::filesystem;
using namespace kforge;
using Clock = std::chrono::steady_clock;

namespace {

int g_rows = 4000;
const std::string kDevice = "nvidia:sm_90:132";

struct Library {
  std::string dir = fs::temp_directory_path() / ("kforge-bench-db-" + std::to_string(getpid()));
  std::string path = dir + "/k.db";
  std::vector<ProblemQuery> queries;
  double record_per_s = 0, batch_per_s = 0, load_ms = 0;
  std::optional<BestKernels> best;

  Library() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto store = KernelStore::open(path).value();
    // ops x static shapes x 8 values of M: one verified kernel each. The first 200 one
    // transaction each, the rest in batches of 500.
    constexpr int kSingle = 200, kBatch = 500;
    std::vector<std::pair<KernelRecord, EvaluationRecord>> batch;
    auto start = Clock::now();
    for (int i = 0; i < g_rows; ++i) {
      const int op = i / 80, shape = (i / 8) % 10, m = 1 << (i % 8);
      KernelRecord k;
      k.task = fmt::format("bench/op{}", op), k.backend = "cuda", k.entry = "f", k.params_json = "{}";
      k.source = fmt::format("// kernel {}\n", i), k.origin = "bench";
      k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
      EvaluationRecord e;
      e.device = kDevice, e.status = "ok", e.verified = true, e.dynamic_dim = "M", e.seed = i;
      MeasurementRecord me;
      me.shape = fmt::format("K=4096,M={},N={}", m, 256 << shape);
      me.bench = me.correct = true, me.n = 50, me.median_us = 10 + i % 7;
      e.measurements = {me};
      queries.push_back(problem_query(k.task, "f32", me.shape, "M"));
      if (i < kSingle) {
        if (!store.record(k, e).ok()) std::abort();
        if (i + 1 == kSingle) {
          record_per_s = kSingle / std::chrono::duration<double>(Clock::now() - start).count();
          start = Clock::now();
        }
        continue;
      }
      batch.emplace_back(std::move(k), std::move(e));
      if (batch.size() == kBatch || i + 1 == g_rows) {
        if (!store.record_batch(batch).ok()) std::abort();
        batch.clear();
      }
    }
    batch_per_s = (g_rows - kSingle) / std::chrono::duration<double>(Clock::now() - start).count();
    const auto load_start = Clock::now();
    best.emplace(BestKernels::load(path, kDevice).value());
    load_ms = std::chrono::duration<double, std::milli>(Clock::now() - load_start).count();
    if (best->size() != static_cast<std::size_t>(g_rows)) std::abort();
  }
  ~Library() { fs::remove_all(dir); }
};

Library& library() {
  static Library l;
  return l;
}

void BM_Resolve(benchmark::State& state) {
  Library& l = library();
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = l.best->resolve(l.queries[i++ % l.queries.size()]);
    benchmark::DoNotOptimize(r.entry);
  }
}

// Baseline: what any hash-table dispatch pays: build a key string like resolve's (op, version,
// dtype, static dims) and find it in a map with as many entries.
void BM_HashMapFloor(benchmark::State& state) {
  Library& l = library();
  auto key_of = [](const ProblemQuery& q) {
    std::string key;
    key.reserve(q.op.size() + q.dtype.size() + q.static_key.size() + 8);
    key += q.op, key += '\x1f', key += std::to_string(q.op_version), key += '\x1f', key += q.dtype;
    key += '\x1f', key += q.static_key;
    return key;
  };
  std::unordered_map<std::string, int> map;
  for (std::size_t i = 0; i < l.queries.size(); ++i) map.emplace(key_of(l.queries[i]), static_cast<int>(i));
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = map.find(key_of(l.queries[i++ % l.queries.size()]));
    benchmark::DoNotOptimize(it);
  }
}

// Baseline: the same exact question asked of SQLite (a prepared statement, an indexed lookup).
void BM_SqliteQuery(benchmark::State& state) {
  Library& l = library();
  sqlite3* db = nullptr;
  sqlite3_open_v2(l.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT kernel_key, median_us FROM best WHERE problem_key = ? AND device_key = ? AND stale = 0",
                     -1, &st, nullptr);
  std::vector<std::string> keys;
  for (const auto& q : l.queries) keys.push_back(problem_key(q));
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& key = keys[i++ % keys.size()];
    sqlite3_bind_text(st, 1, key.c_str(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kDevice.c_str(), static_cast<int>(kDevice.size()), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) state.SkipWithError("no row");
    benchmark::DoNotOptimize(sqlite3_column_text(st, 0));
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

BENCHMARK(BM_Resolve);
BENCHMARK(BM_HashMapFloor);
BENCHMARK(BM_SqliteQuery);

class Capture : public benchmark::ConsoleReporter {
 public:
  Capture() : ConsoleReporter(OO_None) {}
  std::map<std::string, double> ns;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) ns[r.benchmark_name()] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--rows" && i + 1 < argc)
      g_rows = std::atoi(argv[++i]);
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  Library& l = library();
  fmt::print(
      "library: {} published rows; recorded {:.0f} evaluations/s one transaction each, {:.0f}/s in batches "
      "of 500 (best republished each time); open + load {:.1f} ms\n",
      l.best->size(), l.record_per_s, l.batch_per_s, l.load_ms);
  Capture capture;
  benchmark::RunSpecifiedBenchmarks(&capture);
  const double resolve = capture.ns["BM_Resolve"], floor = capture.ns["BM_HashMapFloor"],
               sqlite = capture.ns["BM_SqliteQuery"];
  if (resolve > 0 && floor > 0 && sqlite > 0)
    fmt::print(
        "resolve {:.0f} ns: {:.2f}x the hash-map floor ({:.0f} ns), {:.1f}x faster than asking SQLite ({:.0f} ns)\n",
        resolve, resolve / floor, floor, sqlite / resolve, sqlite);
  benchmark::Shutdown();
  return 0;
}
