// The pages of kforge serve/report on a library written through KernelStore: what the shell and
// browser tests (tests/cli/web.sh) do not reach with an offline search: a kernel made by an LLM
// diff (Anthropic's reply format) found from its parent, a device's measured roof, misses; long
// tables a page at a time (bench_web's generated library); reports that link only to what they wrote.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "bench/bench_web_library.hpp"
#include "kernels_db/kernels_db.hpp"
#include "web/web.hpp"

namespace fs = std::filesystem;
using namespace kforge;
using nlohmann::json;

namespace {

const std::string kDevice = "nvidia:sm_90:132";
const std::string kParent = "// @kforge entry: f\nextern \"C\" void f(float* y) {\n  y[0] = 1;\n}\n";
const std::string kChild = "// @kforge entry: f\nextern \"C\" void f(float* y) {\n  y[0] = 2;  // <b>two</b>\n}\n";

class WebTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-web-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "k.db").string();
    auto store = KernelStore::open(path_).value();
    RunRecord run;
    run.id = run_id_ = "run-1", run.command = "search", run.seed = "1";
    ASSERT_TRUE(store.record_run(run));
    DeviceRecord device = parse_device_key(kDevice);
    device.bandwidth_gbps = 3000, device.peak_gflops = 60000;
    ASSERT_TRUE(store.record_device(device));
    parent_ = record(store, kParent, "", "seed");
    LlmCallRecord call;
    call.run_id = run_id_, call.model = "claude", call.endpoint = "a", call.status = "ok", call.provider = "anthropic";
    call.request = json{{"system", "You write kernels"}, {"messages", {{{"role", "user"}, {"content", "faster"}}}}}.dump();
    const std::string reply = "<<<<<<< SEARCH\n  y[0] = 1;\n=======\n  y[0] = 2;  // <b>two</b>\n>>>>>>> REPLACE\n";
    call.response = json{{"content", {{{"type", "text"}, {"text", reply}}}}}.dump();
    call.created_at = "2000-01-01T00:00:00.000Z";
    ASSERT_TRUE(store.record_llm_call(call));
    child_ = record(store, kChild, parent_, "llm_diff");
    ProblemQuery miss = problem_query("test/f", "f32", "N=7", "");
    ASSERT_TRUE(store.record_miss(miss, kDevice, 3));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string record(KernelStore& store, const std::string& source, const std::string& parent, const std::string& op) {
    KernelRecord k;
    k.task = "test/f", k.backend = "cuda", k.entry = "f", k.params_json = "{}", k.source = source;
    k.origin = op, k.operator_name = op, k.parent_key = parent, k.run_id = run_id_;
    k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
    EvaluationRecord e;
    e.kernel_key = k.key, e.device = kDevice, e.run_id = run_id_, e.status = "ok", e.verified = true;
    MeasurementRecord m;
    m.shape = "N=4096", m.bench = m.correct = true, m.n = 50, m.median_us = op == "seed" ? 4 : 2;
    m.gbps = op == "seed" ? 500 : 1000, m.gflops = op == "seed" ? 100 : 200;
    e.measurements = {m};
    EXPECT_TRUE(store.record(k, e));
    return k.key;
  }
  json api(const web::Site& site, const std::string& name) {
    auto r = site.get("api/" + name + ".json");
    EXPECT_EQ(r.status, 200) << name << ": " << r.body;
    return json::parse(r.body);
  }

  fs::path dir_;
  std::string path_, run_id_, parent_, child_;
};

TEST(WebNames, EncodeAndDecodeAnyKey) {
  for (std::string key : {"cpu:AMD EPYC 7B13", "llm/rmsnorm", "2026-12-07-abc_def", "a%2Fb", ""}) {
    const std::string name = web::encode_name(key);
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"), std::string::npos);
    EXPECT_EQ(web::decode_name(name), key);
  }
}

TEST_F(WebTest, FindsTheLlmCallWhoseDiffMadeTheKernel) {
  auto site = web::Site::open(path_).value();
  const json k = api(site, "kernel-" + web::encode_name(child_));
  ASSERT_FALSE(k["llm_call"].is_null());
  EXPECT_EQ(k["llm_call"]["model"], "claude");
  EXPECT_EQ(k["llm_call"]["messages"][0]["content"], "You write kernels");
  EXPECT_EQ(k["llm_call"]["messages"][1]["content"], "faster");
  EXPECT_NE(k["llm_call"]["reply"].get<std::string>().find("<<<<<<< SEARCH"), std::string::npos);
  const std::string html = site.get("kernel-" + web::encode_name(child_) + ".html").body;
  EXPECT_NE(html.find("<span class=\"del\">-   y[0] = 1;</span>\n<span class=\"add\">+   y[0] = 2;  // &lt;b&gt;two&lt;/b&gt;</span>"),
            std::string::npos)
      << html;
  EXPECT_EQ(html.find("<b>two"), std::string::npos);
  // A seed was made by no call.
  EXPECT_TRUE(api(site, "kernel-" + web::encode_name(parent_))["llm_call"].is_null());
}

TEST_F(WebTest, RooflineDrawsTheMeasuredRoofAndEveryPublishedKernel) {
  auto site = web::Site::open(path_).value();
  const json d = api(site, "device-" + web::encode_name(kDevice));
  EXPECT_EQ(d["bandwidth_gbps"], 3000.0);
  ASSERT_EQ(d["kernels"].size(), 1u);  // one problem: the faster kernel published
  EXPECT_EQ(d["kernels"][0]["kernel_key"], child_);
  const std::string html = site.get("device-" + web::encode_name(kDevice) + ".html").body;
  EXPECT_NE(html.find("<polyline class=\"roof\""), std::string::npos);
  EXPECT_NE(html.find("class=\"roof-point\""), std::string::npos);
  EXPECT_NE(html.find("1 of 1 published kernels placed"), std::string::npos);
}

TEST_F(WebTest, LibraryShowsBestAndMisses) {
  auto site = web::Site::open(path_).value();
  const json l = api(site, "library");
  EXPECT_EQ(l["counts"]["kernels"], 2);
  EXPECT_EQ(l["counts"]["missed_lookups"], 3.0);
  ASSERT_EQ(l["misses"].size(), 1u);
  EXPECT_EQ(l["misses"][0]["count"], 3);
  ASSERT_EQ(l["best"].size(), 1u);
  EXPECT_EQ(l["best"][0]["kernel_key"], child_);
}

TEST_F(WebTest, UnknownNamesAreNotFound) {
  auto site = web::Site::open(path_).value();
  for (std::string path : {"kernel-nope.html", "run-x.html", "task-x.html", "api/nope.json", "../k.db", "static/x.js"})
    EXPECT_EQ(site.get(path).status, 404) << path;
  EXPECT_EQ(site.get("/").status, 200);
}

TEST_F(WebTest, AReportOfOneRun) {
  auto site = web::Site::open(path_, run_id_).value();
  const auto pages = web::write_report(site, (dir_ / "out").string());
  ASSERT_TRUE(pages) << pages.error().message;
  // index, library, the run, its task, two kernels, the device.
  EXPECT_EQ(*pages, 7);
  EXPECT_TRUE(fs::exists(dir_ / "out" / "static" / "kforge.js"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "api" / ("kernel-" + web::encode_name(child_) + ".json")));
  auto unknown = web::Site::open(path_, "nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "--run: no run nope in this library");
}


std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every href and src of every HTML file in `dir` that names no file there; the number of pages read.
std::vector<std::string> dangling_links(const fs::path& dir, int& pages) {
  static const std::regex ref("(href|src)=\"([^\"]*)\"");
  std::vector<std::string> out;
  pages = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() != ".html") continue;
    ++pages;
    const std::string html = slurp(f.path());
    for (std::sregex_iterator it(html.begin(), html.end(), ref), end; it != end; ++it) {
      const std::string target = (*it)[2];
      if (target.starts_with('#')) continue;
      if (target.empty() || target.find(':') != std::string::npos || target.starts_with('/') ||
          !fs::exists(dir / target.substr(0, target.find('#'))))
        out.push_back(f.path().filename().string() + " -> " + target);
    }
  }
  return out;
}

// The "next" link of a page with a pager; empty on the last page.
std::string next_page(const std::string& html) {
  static const std::regex next("<a class=\"page\" href=\"([^\"]*)\">next</a>");
  std::smatch m;
  return std::regex_search(html, m, next) ? m[1].str() : "";
}

class WebPaging : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kforge-web-paging-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "k.db").string();
    run_ = bench::build_web_library(path_, kEvaluations);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static constexpr int kEvaluations = 2100;
  fs::path dir_;
  std::string path_, run_;
};

TEST_F(WebPaging, ATaskOfThousandsOfEvaluationsComesAPageAtATimeWithEveryPointCharted) {
  auto site = web::Site::open(path_).value();
  const std::string name = "task-" + web::encode_name(run_) + "-" + web::encode_name(bench::kWebTask);
  const json doc = json::parse(site.get("api/" + name + ".json").body);
  const std::size_t evaluations = doc["evaluations"].size(), kernels = doc["kernels"].size();
  ASSERT_GE(evaluations, 2000u);  // the JSON holds every one
  const auto first = site.get(name + ".html");
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.pages, static_cast<int>((evaluations + 199) / 200));
  // The charts on the first page show every evaluation and kernel.
  EXPECT_EQ(count(first.body, "class=\"eval "), evaluations);
  EXPECT_EQ(count(first.body, "class=\"node\""), kernels);
  // Bounded: the charts' marks (a few hundred bytes each) and 200 rows; the table's later pages
  // hold no chart.
  EXPECT_LT(first.body.size(), 96 * 1024 + 450 * (evaluations + kernels)) << first.body.size();
  EXPECT_NE(first.body.find("showing evaluations 1–200 of 2,"), std::string::npos);

  // Following "next" from the first page visits every page once, rows in order, none twice.
  static const std::regex row("<tr><td>([0-9]+)</td>");
  std::string page = name + ".html";
  std::size_t seen = 0;
  int visited = 0;
  while (!page.empty()) {
    const auto r = site.get(page);
    ASSERT_EQ(r.status, 200) << page;
    ++visited;
    if (visited > 1) {
      EXPECT_LT(r.body.size(), 96u * 1024) << page;
      EXPECT_EQ(count(r.body, "class=\"eval "), 0u) << page;
      EXPECT_NE(r.body.find(fmt::format("page {} of {}", visited, first.pages)), std::string::npos) << page;
    }
    std::size_t rows = 0;
    for (std::sregex_iterator it(r.body.begin(), r.body.end(), row), end; it != end; ++it, ++rows)
      EXPECT_EQ(std::stoul((*it)[1]), seen + rows + 1) << page;
    EXPECT_LE(rows, 200u) << page;
    seen += rows;
    page = next_page(r.body);
    ASSERT_LE(visited, first.pages) << "the pager goes past its last page";
  }
  EXPECT_EQ(visited, first.pages);
  EXPECT_EQ(seen, evaluations);
  // The second page leads back to the first; no page past the last, and no "-p1" beside the first.
  EXPECT_NE(site.get(name + "-p2.html").body.find("<a class=\"page\" href=\"" + name + ".html\">previous</a>"),
            std::string::npos);
  EXPECT_EQ(site.get(fmt::format("{}-p{}.html", name, first.pages + 1)).status, 404);
  EXPECT_EQ(site.get(name + "-p1.html").status, 404);
  EXPECT_EQ(site.get(name + "-p0.html").status, 404);
}

TEST_F(WebPaging, TheRunsListComesAPageAtATime) {
  {
    auto store = KernelStore::open(path_).value();
    for (int i = 0; i < 250; ++i) {
      RunRecord run;
      run.id = fmt::format("empty-{:03}", i), run.command = "search", run.seed = "1";
      ASSERT_TRUE(store.record_run(run));
    }
  }
  auto site = web::Site::open(path_).value();
  const auto first = site.get("index.html");
  EXPECT_EQ(first.pages, 2);
  EXPECT_EQ(json::parse(site.get("api/index.json").body)["runs"].size(), 251u);
  EXPECT_EQ(next_page(first.body), "index-p2.html");
  const auto second = site.get("index-p2.html");
  ASSERT_EQ(second.status, 200);
  EXPECT_NE(second.body.find("showing runs 201–251 of 251"), std::string::npos);
  EXPECT_EQ(next_page(second.body), "");
}

TEST_F(WebPaging, AReportWritesEveryPageItLinksToAndNoneItDoesNot) {
  // A second run that re-evaluates a kernel of the first and makes a child of it: the pages of
  // either run alone would link to the other's pages.
  std::string shared_key, child_key, run2 = "run-two";
  {
    auto store = KernelStore::open(path_).value();
    RunRecord run;
    run.id = run2, run.command = "search", run.seed = "2";
    ASSERT_TRUE(store.record_run(run));
    const json task = json::parse(web::Site::open(path_).value().get(
        "api/task-" + web::encode_name(run_) + "-" + web::encode_name(bench::kWebTask) + ".json").body);
    shared_key = task["evaluations"][3]["kernel_key"];
    KernelRecord k;
    k.task = bench::kWebTask, k.backend = "cpu", k.entry = "scale_f32", k.params_json = "{}", k.run_id = run2;
    k.source = "// @kforge entry: scale_f32\n// run two\nextern \"C\" void scale_f32() {}\n";
    k.origin = k.operator_name = "param_mutation", k.parent_key = shared_key;
    k.key = child_key = kernel_key(k.task, k.backend, k.params_json, k.source);
    EvaluationRecord e;
    e.kernel_key = k.key, e.device = bench::kWebDevice, e.run_id = run2, e.status = "ok", e.speedup = 9;
    MeasurementRecord m;
    m.shape = "N=4096", m.bench = m.correct = true, m.n = 50, m.median_us = 1, m.baseline_median_us = 10, m.speedup = 10;
    e.measurements = {m};
    ASSERT_TRUE(store.record(k, e));
    KernelRecord again = k;
    again.key = shared_key;  // only its key matters to record an evaluation of a stored kernel
    e.kernel_key = shared_key;
    ASSERT_TRUE(store.record(again, e));
  }
  for (const std::string& run : {run_, run2, std::string()}) {
    auto site = web::Site::open(path_, run).value();
    const fs::path out = dir_ / ("report-" + (run.empty() ? "all" : run));
    const auto written = web::write_report(site, out.string());
    ASSERT_TRUE(written) << written.error().message;
    int pages = 0;
    const auto dangling = dangling_links(out, pages);
    EXPECT_TRUE(dangling.empty()) << "report of " << (run.empty() ? "every run" : run) << ": " << dangling.size()
                                  << " dangling links, e.g. " << dangling.front();
    EXPECT_EQ(pages, *written);
  }
  // Run one's report: the paged task table in full, and the kernel it shares with run two opens
  // (its page names run two and the child as text).
  const fs::path one = dir_ / ("report-" + run_);
  const std::string task = "task-" + web::encode_name(run_) + "-" + web::encode_name(bench::kWebTask);
  const int pages = web::Site::open(path_).value().get(task + ".html").pages;
  ASSERT_GE(pages, 10);
  for (int p = 2; p <= pages; ++p) EXPECT_TRUE(fs::exists(one / fmt::format("{}-p{}.html", task, p))) << p;
  EXPECT_FALSE(fs::exists(one / fmt::format("{}-p{}.html", task, pages + 1)));
  const std::string shared = slurp(one / ("kernel-" + web::encode_name(shared_key) + ".html"));
  EXPECT_NE(shared.find("<span class=\"absent\" title=\"not in this report\">run-two</span>"), std::string::npos);
  EXPECT_EQ(shared.find("href=\"kernel-" + web::encode_name(child_key)), std::string::npos);
  // The full report links them.
  const std::string all = slurp(dir_ / "report-all" / ("kernel-" + web::encode_name(shared_key) + ".html"));
  EXPECT_NE(all.find("href=\"kernel-" + web::encode_name(child_key) + ".html\""), std::string::npos);
}

}  // namespace
