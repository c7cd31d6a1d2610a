// The pages of kforge serve/report on a library written through KernelStore: what the shell and
// browser tests (tests/cli/web.sh) do not reach with an offline search: a kernel made by an LLM
// diff (Anthropic's reply format) found from its parent, a device's measured roof, misses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

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

}  // namespace
