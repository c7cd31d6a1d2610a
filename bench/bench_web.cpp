// kforge serve's speed: the task page of a run of N evaluations (default 1,000), as the server
// builds it (its JSON read in one transaction, then the curve, tree, grids and the first page of
// the table drawn), a later page of its table, and its JSON alone, beside a baseline timed in the same run: the plain SQL query of the task's
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

#include "bench/bench_web_library.hpp"
#include "web/web.hpp"

namespace fs = std::filesystem;
using namespace kforge;
using Clock = std::chrono::steady_clock;

namespace {

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
  const std::string run_id = bench::build_web_library(path, n);
  const std::string& kTask = bench::kWebTask;

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
  const auto later = site.get(page + "-p2.html");  // there is a second page from 201 evaluations
  const double later_ms = later.status == 200 ? median_ms(repeats, [&] { (void)site.get(page + "-p2.html"); }) : 0;
  sqlite3_close(db);
  fs::remove_all(dir);

  fmt::print("task page of a run of {} evaluations ({} points; {} pages: the first {} KiB of HTML, the second {} KiB), "
             "median of {}:\n",
             n, points, html.pages, html.body.size() / 1024, later.status == 200 ? later.body.size() / 1024 : 0, repeats);
  fmt::print("  plain SQL query of its evaluations ({} rows)  {:8.2f} ms   (baseline)\n", rows, sql_ms);
  fmt::print("  its JSON (api/...json)                         {:8.2f} ms   {:6.1f}x the query\n", json_ms, json_ms / sql_ms);
  fmt::print("  the page (.html: charts and rows 1-200)         {:8.2f} ms   {:6.1f}x the query\n", page_ms, page_ms / sql_ms);
  if (later_ms > 0)
    fmt::print("  its second page (-p2.html: rows 201-400)       {:8.2f} ms   {:6.1f}x the query\n", later_ms,
               later_ms / sql_ms);
  return 0;
}
