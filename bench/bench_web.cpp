// kforge serve's speed: the task page of a run of N evaluations (default 1,000), as the server
// builds it (its JSON read in one transaction, then the curve, tree, grids and table drawn), and
// its JSON alone, beside a baseline timed in the same run: the plain SQL query of the task's
// evaluations, stepped through with a prepared statement on a read-only connection.
//
//   build/bench/bench_web [--evaluations N]
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kernels_db/kernels_db.hpp"
#include "web/web.hpp"

namespace fs = std::filesystem;
using namespace kforge;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kTask = "bench/scale", kDevice = "cpu:bench";

// A run of `n` evaluations of one task: each kernel a child of an earlier one, one in eight
// failing, every 16th re-verified (a second evaluation), and a saved population of four islands.
std::string build_library(const std::string& path, int n) {
  auto store = KernelStore::open(path).value();
  RunRecord run;
  run.id = new_run_id(), run.command = "bench", run.seed = "1";
  if (!store.record_run(run)) std::abort();
  std::vector<std::pair<KernelRecord, EvaluationRecord>> batch;
  std::vector<std::string> keys;
  nlohmann::json programs = nlohmann::json::array(), elites = nlohmann::json::array();
  for (int i = 0; i < n;) {
    KernelRecord k;
    k.task = kTask, k.backend = "cpu", k.entry = "scale_f32", k.params_json = "{}", k.run_id = run.id;
    k.source = fmt::format("// @kforge entry: scale_f32\n// variant {}\nextern \"C\" void scale_f32() {{}}\n", i);
    k.origin = fmt::format("param_mutation-{}", i), k.operator_name = i < 2 ? "seed" : "param_mutation";
    k.parent_key = i < 2 ? "" : keys[(i * 7919) % keys.size()];
    k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
    keys.push_back(k.key);
    EvaluationRecord e;
    e.kernel_key = k.key, e.device = kDevice, e.run_id = run.id, e.seed = i, e.baseline = "cpu_naive.cpp";
    e.status = i % 8 == 5 ? "incorrect" : "ok";
    e.log = "warning: nothing to see\n";
    MeasurementRecord m;
    m.shape = "N=4096", m.bench = true, m.correct = e.status == "ok";
    if (m.correct) {
      m.n = 50, m.median_us = 10.0 / (1 + (i % 97) / 100.0), m.baseline_median_us = 10, m.speedup = 10 / m.median_us;
      m.gbps = 3.3 * m.speedup, m.gflops = 0.4 * m.speedup;
      e.speedup = m.speedup;
    }
    e.measurements = {m};
    programs.push_back({{"key", k.key}, {"fitness", e.speedup}, {"origin", k.origin}});
    if (e.status == "ok" && i % 5 == 0) elites.push_back({i % 8, (i / 8) % 8, i, -1});
    batch.push_back({k, e});
    ++i;
    if (i % 16 == 0) {
      e.verified = true, e.seed += 1000000;
      batch.push_back({k, e});
      ++i;
    }
  }
  nlohmann::json islands = nlohmann::json::array();
  for (int island = 0; island < 4; ++island) islands.push_back({{"members", nlohmann::json::array()}, {"elites", elites}});
  SearchStateRecord state{run.id, kTask, nlohmann::json{{"population", {{"programs", programs}, {"islands", islands}}}}.dump()};
  if (!store.record_batch(batch, &state)) std::abort();
  return run.id;
}

template <class F>
double median_ms(int repeats, F&& f) {
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--evaluations") == 0) n = std::atoi(argv[i + 1]);
  const fs::path dir = fs::temp_directory_path() / fmt::format("kforge-bench-web-{}", getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "k.db").string();
  const std::string run_id = build_library(path, n);

  auto site = web::Site::open(path).value();
  const std::string page = "task-" + web::encode_name(run_id) + "-" + web::encode_name(kTask);
  const auto html = site.get(page + ".html"), doc = site.get("api/" + page + ".json");
  if (html.status != 200 || doc.status != 200) {
    fmt::print(stderr, "bench_web: the task page failed: {}\n", html.body.substr(0, 200));
    return 1;
  }
  const auto points = nlohmann::json::parse(doc.body)["evaluations"].size();

  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::int64_t rows = 0;
  auto query = [&] {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT e.evaluation_id, e.kernel_key, e.status, e.speedup, e.verified, e.created_at, "
                       "k.operator, k.origin FROM evaluation e JOIN kernel k USING(kernel_key) "
                       "WHERE e.run_id = ?1 AND k.task = ?2 ORDER BY e.evaluation_id",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, run_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, kTask.c_str(), -1, SQLITE_TRANSIENT);
    rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) ++rows;
    sqlite3_finalize(st);
  };
  const int repeats = 30;
  const double sql_ms = median_ms(repeats, query);
  const double json_ms = median_ms(repeats, [&] { (void)site.get("api/" + page + ".json"); });
  const double page_ms = median_ms(repeats, [&] { (void)site.get(page + ".html"); });
  sqlite3_close(db);
  fs::remove_all(dir);

  fmt::print("task page of a run of {} evaluations ({} points, {} KiB of HTML), median of {}:\n", n, points,
             html.body.size() / 1024, repeats);
  fmt::print("  plain SQL query of its evaluations ({} rows)  {:8.2f} ms   (baseline)\n", rows, sql_ms);
  fmt::print("  its JSON (api/...json)                         {:8.2f} ms   {:6.1f}x the query\n", json_ms, json_ms / sql_ms);
  fmt::print("  the page (.html)                               {:8.2f} ms   {:6.1f}x the query\n", page_ms, page_ms / sql_ms);
  return 0;
}
