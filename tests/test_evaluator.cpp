// The evaluator against real kernels: the shipped seeds pass, and each kind of broken kernel
// (tests/kernels/) ends as the right status while this test process carries on.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "evaluator/evaluator.hpp"
#include "evaluator/internal.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

const std::string kSource = KFORGE_SOURCE_DIR;

// The cpu backend over the tests' own compile cache.
const Backend& compiler() {
  static const auto host = make_host_backend({.compiler = "", .cache_dir = KFORGE_TEST_CACHE_DIR});
  if (Status s = host->compiler_status(); !s) throw std::runtime_error(s.error().message);
  return *host;
}

Evaluator evaluator_for(const std::string& root, const std::string& id) {
  auto task = find_task(root, id);
  if (!task) throw std::runtime_error(task.error().message);
  auto e = Evaluator::create(std::move(*task), compiler());
  if (!e) throw std::runtime_error(e.error().message);
  return std::move(*e);
}

Candidate load_kernel(const std::string& path) {
  auto source = read_file(path);
  if (!source) throw std::runtime_error(source.error().message);
  auto c = parse_candidate(std::move(*source), path);
  if (!c) throw std::runtime_error(c.error().message);
  return std::move(*c);
}

EvalOptions check_only(double timeout_s = 60) {
  EvalOptions o;
  o.time_bench_shapes = false;
  o.timeout_s = timeout_s;
  return o;
}

EvalResult eval_rmsnorm(const std::string& kernel, const EvalOptions& options = check_only()) {
  static Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  return rmsnorm.evaluate(load_kernel(kSource + "/tests/kernels/" + kernel), kernel, options);
}

TEST(Evaluator, EveryShippedCpuSeedIsCorrect) {
  auto tasks = load_tasks(kSource + "/tasks");
  ASSERT_TRUE(tasks.ok()) << tasks.error().message;
  int seeds = 0;
  for (const auto& task : *tasks) {
    auto evaluator = Evaluator::create(task, compiler());
    ASSERT_TRUE(evaluator.ok()) << evaluator.error().message;
    for (const auto& path : task.seed_paths) {
      if (fs::path(path).filename().string().rfind("cpu_", 0) != 0) continue;
      EvalResult r = evaluator->evaluate(load_kernel(path), path, check_only());
      EXPECT_EQ(r.status, EvalStatus::ok) << path << ": " << r.message;
      ASSERT_EQ(r.shapes.size(), task.check_shapes.size() + task.bench_shapes.size() + 1);
      EXPECT_TRUE(r.shapes.back().held_out) << "one random shape the task does not list";
      ++seeds;
    }
  }
  EXPECT_GE(seeds, 6);
}

TEST(Evaluator, OpenMpKernelsEndCleanlyEveryTime) {
  // Unloading libgomp under a kernel's idle OpenMP threads crashed about every other run.
  static Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  const Candidate seed = load_kernel(kSource + "/tasks/llm/rmsnorm/seeds/cpu_omp_simd.cpp");
  for (int i = 0; i < 10; ++i) {
    EvalResult r = rmsnorm.evaluate(seed, "cpu_omp_simd.cpp", check_only());
    ASSERT_EQ(r.status, EvalStatus::ok) << "run " << i << ": " << r.message;
  }
}

TEST(Evaluator, CorrectKernelIsTimedWithStatistics) {
  Evaluator scale = evaluator_for(kSource + "/tests/data/tasks", "tiny/scale");
  EvalOptions options;
  options.seed = 42;
  EvalResult r =
      scale.evaluate(load_kernel(kSource + "/tests/data/tasks/tiny/scale/seeds/cpu_naive.cpp"), "k.cpp", options);
  ASSERT_EQ(r.status, EvalStatus::ok) << r.message;
  EXPECT_EQ(r.seed, 42u);
  int timed = 0;
  for (const auto& s : r.shapes) {
    EXPECT_TRUE(s.correct);
    EXPECT_EQ(s.timing.has_value(), s.bench);
    if (!s.timing) continue;
    ++timed;
    EXPECT_GE(s.timing->n, options.min_repeats);
    EXPECT_LE(s.timing->n, options.max_repeats);
    EXPECT_GT(s.timing->median_us, 0);
    EXPECT_LE(s.timing->min_us, s.timing->p20_us);
    EXPECT_LE(s.timing->p20_us, s.timing->median_us);
    EXPECT_LE(s.timing->median_us, s.timing->p80_us);
    EXPECT_GT(s.gbps, 0);
    EXPECT_GT(s.floor_us, 0);  // the physics floor, and how close the kernel comes to it
    EXPECT_NEAR(s.roofline_pct, 100 * s.floor_us / s.timing->median_us, 1e-9);
    // The task's naive seed is the baseline, timed interleaved with the candidate: here the
    // candidate is that same kernel, so the speedup must come out near 1.
    ASSERT_TRUE(s.baseline_timing.has_value());
    EXPECT_GT(s.baseline_timing->median_us, 0);
    EXPECT_GT(s.speedup, 1.0 / 3);  // wide: a ~1 us kernel on a shared 2-core machine
    EXPECT_LT(s.speedup, 3.0);
  }
  EXPECT_EQ(timed, 1);
  EXPECT_EQ(r.baseline, "cpu_naive.cpp");
  EXPECT_GT(r.speedup, 0);
}

TEST(Evaluator, OffByOneAtTheTailIsRejectedWithItsFirstMismatch) {
  EvalResult r = eval_rmsnorm("rmsnorm_off_by_one.cpp");
  ASSERT_EQ(r.status, EvalStatus::incorrect) << r.message;
  // The first check shape is M=1,N=1: its only element is the one never written, so it still
  // holds the poison (NaN) the harness filled the output with.
  const ShapeResult& first = r.shapes.front();
  EXPECT_FALSE(first.correct);
  ASSERT_FALSE(first.mismatches.empty());
  EXPECT_EQ(first.mismatches[0].tensor, "y");
  EXPECT_EQ(first.mismatches[0].index, 0);
  EXPECT_TRUE(std::isnan(first.mismatches[0].got));
  EXPECT_FALSE(std::isnan(first.mismatches[0].want));
  // On M=3,N=17 the misses are exactly the last element of each row.
  for (const auto& s : r.shapes) {
    if (s.dims.at("N") != 17) continue;
    ASSERT_EQ(s.mismatches.size(), 3u);
    EXPECT_EQ(s.mismatches[0].index, 16);
    EXPECT_EQ(s.mismatches[1].index, 33);
    EXPECT_EQ(s.mismatches[2].index, 50);
  }
  EXPECT_NE(r.message.find("y[0] = nan (want "), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("at M=1,N=1; 1 of 1 output elements wrong"), std::string::npos) << r.message;
  EXPECT_EQ(r.shapes[1].wrong_elements, 3);
}

TEST(Evaluator, AQ4_0KernelThatReadsTheNibblesInTheWrongOrderIsIncorrect) {
  // ggml's block_q4_0 keeps element j in the low nibble of byte j and element j + 16 in its high
  // nibble; this kernel reads them as elements 2j and 2j + 1, a classic mistake. Every output is
  // wrong, down to the single block of N=1,K=32.
  Evaluator q4 = evaluator_for(kSource + "/tasks", "llm/gemv_q4_0");
  EvalResult r = q4.evaluate(load_kernel(kSource + "/tests/kernels/gemv_q4_0_interleaved_nibbles.cpp"),
                             "gemv_q4_0_interleaved_nibbles.cpp", check_only());
  ASSERT_EQ(r.status, EvalStatus::incorrect) << r.message;
  EXPECT_NE(r.message.find("at K=32,N=1; 1 of 1 output elements wrong"), std::string::npos) << r.message;
  // The same arithmetic in ggml's order passes (the shipped naive seed).
  EvalResult seed = q4.evaluate(load_kernel(kSource + "/tasks/llm/gemv_q4_0/seeds/cpu_naive.cpp"), "cpu_naive.cpp",
                                check_only());
  EXPECT_EQ(seed.status, EvalStatus::ok) << seed.message;
}

TEST(Evaluator, QuantizedInputsAreGgmlBlocksDrawnFromTheDistribution) {
  // The harness's q8_0 inputs dequantize to values of the declared spread: rows of N(0, 0.02).
  auto task = find_task(kSource + "/tasks", "llm/gemv_q8_0");
  ASSERT_TRUE(task.ok()) << task.error().message;
  std::mt19937_64 rng(7);
  const Bindings dims = {{"N", 64}, {"K", 4096}};
  CallArgs args = make_inputs(*task, dims, rng);
  ASSERT_EQ(args.buffers[0].bytes, 64u * 128 * 34);
  std::vector<float> w(64 * 4096);
  dequantize(DType::q8_0, args.buffers[0].data(), w.data(), static_cast<std::int64_t>(w.size()));
  double sq = 0;
  for (float v : w) sq += double(v) * v;
  EXPECT_NEAR(std::sqrt(sq / w.size()), 0.02, 0.001);
  // Redrawing replaces whole blocks: every block still dequantizes to finite values with |q| <= 127
  // and at least one q at +-127 (the block's own amax).
  std::vector<std::vector<size_t>> changed;
  redraw_some(*task, args, rng, &changed);
  ASSERT_EQ(changed[0].size(), 16u);
  for (size_t offset : changed[0]) {
    EXPECT_EQ(offset % 34, 0u) << "a redraw starts at a block";
    const auto* block = reinterpret_cast<const std::int8_t*>(args.buffers[0].data() + offset + 2);
    int amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(int(block[j])));
    EXPECT_EQ(amax, 127);
  }
}

TEST(Evaluator, IntegerBoundsThatNameSizesAreEvaluatedPerShape) {
  // llm/embedding draws ids from int(0, V - 1): always a row of the table, whatever V is.
  auto task = find_task(kSource + "/tasks", "llm/embedding");
  ASSERT_TRUE(task.ok()) << task.error().message;
  std::mt19937_64 rng(11);
  for (std::int64_t V : {1, 5, 4096}) {
    const Bindings dims = {{"M", 64}, {"V", V}, {"D", 3}};
    CallArgs args = make_inputs(*task, dims, rng);
    redraw_some(*task, args, rng);
    const auto* ids = reinterpret_cast<const std::int32_t*>(args.buffers[1].data());
    const auto [lo, hi] = std::minmax_element(ids, ids + 64);
    EXPECT_GE(*lo, 0) << "V=" << V;
    EXPECT_LE(*hi, V - 1) << "V=" << V;
    if (V == 4096) {
      EXPECT_GT(*hi, 2048) << "the range is the whole table, not a fixed one";
    }
  }
}

TEST(TaskValidation, AReferenceWithAConstantOutputIsRejected) {
  Evaluator broken = evaluator_for(kSource + "/tests/data/tasks", "broken/constant_reference");
  Status s = broken.check_reference();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::invalid_input);
  EXPECT_NE(s.error().message.find("constant_reference/reference.cpp: the reference gives the same outputs for two "
                                   "different draws of its inputs on every check shape (smallest N=1)"),
            std::string::npos)
      << s.error().message;
}

TEST(TaskValidation, AReferenceThatIgnoresAnInputIsRejectedByName) {
  Evaluator broken = evaluator_for(kSource + "/tests/data/tasks", "broken/ignores_input");
  Status s = broken.check_reference();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("when its input 'w' is drawn afresh, on every check shape: it ignores 'w'"),
            std::string::npos)
      << s.error().message;
}

TEST(TaskValidation, HonestReferencesPass) {
  // Including one whose smallest check shape has a constant answer (the argmax of one logit) and
  // the quantized gemv, whose inputs are ggml blocks.
  for (const char* id : {"tiny/scale"})
    EXPECT_TRUE(evaluator_for(kSource + "/tests/data/tasks", id).check_reference().ok()) << id;
  for (const char* id : {"llm/lmhead_argmax", "llm/gemv_q4_0", "llm/gemv_f16"}) {
    Status s = evaluator_for(kSource + "/tasks", id).check_reference();
    EXPECT_TRUE(s.ok()) << id << ": " << s.error().message;
  }
}

TEST(Evaluator, SegfaultBecomesACrashStatus) {
  EvalResult r = eval_rmsnorm("rmsnorm_segfault.cpp");
  EXPECT_EQ(r.status, EvalStatus::crash);
  EXPECT_EQ(r.message, "crash: SIGSEGV");
}

TEST(Evaluator, AbortBecomesACrashStatus) {
  EvalResult r = eval_rmsnorm("rmsnorm_abort.cpp");
  EXPECT_EQ(r.status, EvalStatus::crash);
  EXPECT_EQ(r.message, "crash: SIGABRT");
}

TEST(Evaluator, QuietExitIsACrashNotAPass) {
  EvalResult r = eval_rmsnorm("rmsnorm_exit.cpp");
  EXPECT_EQ(r.status, EvalStatus::crash);
  EXPECT_NE(r.message.find("ended the process"), std::string::npos) << r.message;
}

TEST(Evaluator, EndlessKernelTimesOut) {
  auto start = std::chrono::steady_clock::now();
  EvalResult r = eval_rmsnorm("rmsnorm_endless.cpp", check_only(1.5));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, EvalStatus::timeout);
  // At a 1.5 s timeout the per-call watchdog's limit is the timeout too: either may fire first.
  EXPECT_TRUE(r.message == "timeout after 1.5 s" || r.message == kforge::kWatchdogMessage) << r.message;
  EXPECT_LT(seconds, 30);
}

TEST(Evaluator, CompileErrorKeepsTheLog) {
  EvalResult r = eval_rmsnorm("rmsnorm_syntax_error.cpp");
  EXPECT_EQ(r.status, EvalStatus::compile_error);
  EXPECT_NE(r.log.find("rmsnorm_syntax_error.cpp:4"), std::string::npos) << r.log;
  // gcc's excerpt is the kernel's own line 4, not a line shifted by what kforge appends.
  EXPECT_NE(r.log.find("y[0] = x[0] * w[0]   // missing semicolon"), std::string::npos) << r.log;
  EXPECT_NE(r.message.find("rmsnorm_syntax_error.cpp:4"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("error:"), std::string::npos) << r.message;
}

TEST(Evaluator, WrongSignatureIsACompileError) {
  EvalResult r = eval_rmsnorm("rmsnorm_wrong_signature.cpp");
  EXPECT_EQ(r.status, EvalStatus::compile_error);
  EXPECT_NE(r.log.find("conflicting declaration of C function"), std::string::npos) << r.log;
}

TEST(Evaluator, ReferenceThatDoesNotCompileIsATaskError) {
  fs::path root = fs::path(::testing::TempDir()) / ("kforge-badref-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "tiny");
  fs::copy(kSource + "/tests/data/tasks/tiny/scale", root / "tiny" / "scale", fs::copy_options::recursive);
  std::ofstream(root / "tiny" / "scale" / "reference.cpp")
      << "// @kforge entry: scale_reference\nextern \"C\" void scale_reference(const float* x) { x = ; }\n";
  auto task = find_task(root.string(), "tiny/scale");
  ASSERT_TRUE(task.ok());
  auto e = Evaluator::create(std::move(*task), compiler());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("reference.cpp: the reference does not compile"), std::string::npos)
      << e.error().message;
  fs::remove_all(root);
}

TEST(Evaluator, LinkErrorSummaryNamesTheMissingSymbol) {
  static Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  auto c = parse_candidate(
      "// @kforge entry: rmsnorm_f32\n"
      "extern \"C\" void helper();\n"
      "extern \"C\" void rmsnorm_f32(const float*, const float*, float*, int, int, float) { helper(); }\n",
      "link.cpp");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EvalResult r = rmsnorm.evaluate(*c, "link.cpp", check_only());
  EXPECT_EQ(r.status, EvalStatus::compile_error);
  EXPECT_NE(r.message.find("undefined reference to `helper'"), std::string::npos) << r.message;
}

TEST(Evaluator, ResultSurvivesAJsonRoundTrip) {
  EvalResult r = eval_rmsnorm("rmsnorm_off_by_one.cpp");
  auto back = eval_result_from_json(to_json(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->status, r.status);
  EXPECT_EQ(back->message, r.message);
  ASSERT_EQ(back->shapes.size(), r.shapes.size());
  EXPECT_TRUE(std::isnan(back->shapes[0].mismatches[0].got));
  EXPECT_EQ(back->shapes[0].dims, r.shapes[0].dims);
}

// Found by tests/fuzz (fuzz_worker_frame): a float where an integer belongs (1e300) was cast with
// undefined behaviour. A result comes from the process that ran the candidate: it is malformed.
TEST(Evaluator, AFloatWhereAnIntegerBelongsIsMalformed) {
  EvalResult r;
  r.shapes.resize(1);
  r.shapes[0].dims = {{"N", 4}};
  r.shapes[0].timing = TimingStats{};
  const nlohmann::json good = to_json(r);
  ASSERT_TRUE(eval_result_from_json(good).ok());
  for (const char* field : {"/seed", "/shapes/0/dims/N", "/shapes/0/wrong_elements", "/shapes/0/timing/n"}) {
    nlohmann::json bad = good;
    bad[nlohmann::json::json_pointer(field)] = 1e300;
    auto back = eval_result_from_json(bad);
    ASSERT_FALSE(back.ok()) << field;
    EXPECT_NE(back.error().message.find("expected an integer, not number"), std::string::npos) << back.error().message;
  }
  EXPECT_EQ(eval_options_from_json({{"min_repeats", 5}}).min_repeats, 5);
  EXPECT_THROW(eval_options_from_json({{"min_repeats", 1e300}}), nlohmann::json::type_error);
}

}  // namespace

// ---- the worker process ---------------------------------------------------------------------------

TEST(Worker, IsReusedAcrossEvaluationsAndRestartedAfterItIsKilled) {
  Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  const Candidate seed = load_kernel(kSource + "/tasks/llm/rmsnorm/seeds/cpu_naive.cpp");
  EXPECT_EQ(rmsnorm.evaluate(seed, "a.cpp", check_only()).status, EvalStatus::ok);
  EXPECT_EQ(rmsnorm.evaluate(seed, "b.cpp", check_only()).status, EvalStatus::ok);
  EXPECT_EQ(rmsnorm.worker().starts(), 1);

  auto pong = rmsnorm.worker().call({{"type", "ping"}}, 10);
  ASSERT_TRUE(pong.ok()) << pong.error().message;
  const pid_t pid = (*pong)["pid"].get<int>();
  ASSERT_GT(pid, 0);
  EXPECT_NE(pid, getpid());
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  usleep(200000);  // the kernel takes the process down
  // The dead worker costs that one call nothing but a restart.
  EXPECT_EQ(rmsnorm.evaluate(seed, "c.cpp", check_only()).status, EvalStatus::ok);
  EXPECT_EQ(rmsnorm.worker().starts(), 2);
}

TEST(Worker, ACrashingKernelDoesNotCostTheWorker) {
  Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  EXPECT_EQ(rmsnorm.evaluate(load_kernel(kSource + "/tests/kernels/rmsnorm_segfault.cpp"), "s.cpp", check_only()).status,
            EvalStatus::crash);
  EXPECT_EQ(rmsnorm.evaluate(load_kernel(kSource + "/tests/kernels/rmsnorm_closes_descriptors.cpp"), "c.cpp",
                             check_only())
                .status,
            EvalStatus::crash);
  const Candidate seed = load_kernel(kSource + "/tasks/llm/rmsnorm/seeds/cpu_naive.cpp");
  EXPECT_EQ(rmsnorm.evaluate(seed, "ok.cpp", check_only()).status, EvalStatus::ok);
  EXPECT_EQ(rmsnorm.worker().starts(), 1);
}

TEST(Worker, WhatAKernelPrintsIsKeptCappedAndOffTheResultChannel) {
  EvalResult r = eval_rmsnorm("rmsnorm_chatty.cpp");
  EXPECT_EQ(r.status, EvalStatus::ok) << r.message;
  EXPECT_EQ(r.output.size(), 16u << 10);
  EXPECT_EQ(r.output.substr(0, 8), "xxxxxxxx");
}

TEST(Worker, AProgramThatIsNoWorkerIsAClearError) {
  auto task = find_task(kSource + "/tasks", "llm/rmsnorm");
  ASSERT_TRUE(task.ok());
  const Candidate seed = load_kernel(kSource + "/tasks/llm/rmsnorm/seeds/cpu_naive.cpp");
  struct Case {
    std::vector<std::string> command;
    std::string message;
  };
  for (const Case& c : {Case{{"/nonexistent/kforge", "worker"}, "cannot start the worker /nonexistent/kforge"},
                        Case{{"echo", "hello"}, "malformed frame header"},
                        Case{{"sh", "-c", "echo broken >&2; exit 3"}, "it exited with code 3: broken"}}) {
    auto e = Evaluator::create(*task, compiler(), std::make_shared<Worker>(c.command));
    ASSERT_TRUE(e.ok()) << e.error().message;
    EvalResult r = e->evaluate(seed, "k.cpp", check_only());
    EXPECT_EQ(r.status, EvalStatus::runtime_error) << c.command[0];
    EXPECT_NE(r.message.find(c.message), std::string::npos) << r.message;
  }
}

TEST(Worker, AWorkerThatNeverAnswersIsKilledAtTheDeadline) {
  Worker silent({"sleep", "600"});
  const auto start = std::chrono::steady_clock::now();
  auto answer = silent.call({{"type", "ping"}}, 0.5);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(answer.ok());
  EXPECT_NE(answer.error().message.find("no answer within 0.5 s"), std::string::npos) << answer.error().message;
  EXPECT_LT(seconds, 5);
}

TEST(Worker, AnswersAMalformedRequestWithAnErrorAndKeepsServing) {
  Worker worker;
  auto bad = worker.call({{"type", "eval"}, {"task_dir", "/nonexistent"}}, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("/nonexistent"), std::string::npos) << bad.error().message;
  auto unknown = worker.call({{"type", "dance"}}, 10);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown request type 'dance'"), std::string::npos);
  auto pong = worker.call({{"type", "ping"}}, 10);
  ASSERT_TRUE(pong.ok()) << pong.error().message;
  EXPECT_EQ(worker.starts(), 1);
}

TEST(Worker, AnAnswerWithFieldsOfTheWrongTypeIsOneErrorNotAnException) {
  // A worker that reads one request and sends `answer` back.
  auto answering = [](const std::string& answer) {
    return Worker({"sh", "-c", "read n; head -c \"$n\" >/dev/null; a='" + answer + "'; printf '%s\\n%s' ${#a} \"$a\"; sleep 5"});
  };
  Worker string_id = answering(R"({"id":"1","pong":true})");
  auto a = string_id.call({{"type", "ping"}}, 10);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find("it answered another request"), std::string::npos) << a.error().message;
  Worker float_id = answering(R"({"id":1e300,"pong":true})");
  auto b = float_id.call({{"type", "ping"}}, 10);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("it answered another request"), std::string::npos) << b.error().message;
  Worker number_error = answering(R"({"id":1,"error":5})");
  auto c = number_error.call({{"type", "ping"}}, 10);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "worker: 5");
}

TEST(Worker, AShippedFileTravelsOnceAndALargeOneOnlyWhenTheWorkerLacksIt) {
  const fs::path dir = fs::temp_directory_path() / ("kforge-ship-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "task" / "sub");
  const std::string big(3 << 20, 'x'), small = "small";
  std::ofstream(dir / "big.so") << big;
  std::ofstream(dir / "task" / "sub" / "small.txt") << small;
  // tee keeps every byte sent to the worker; its store is a cache of its own.
  const std::string sent = (dir / "sent").string();
  Worker worker({"env", "KFORGE_CACHE_DIR=" + (dir / "cache").string(), "sh", "-c",
                 "tee -a '" + sent + "' | \"$0\" worker", fs::read_symlink("/proc/self/exe").string()});
  worker.ship_files(true);
  const nlohmann::json request = {
      {"type", "ping"}, {"big", (dir / "big.so").string()}, {"folder", (dir / "task").string()}};
  auto sent_bytes = [&] { return fs::exists(sent) ? fs::file_size(sent) : 0; };
  for (int round = 0; round < 3; ++round) {
    if (round == 2) worker.stop();  // a fresh process: its store still has the files
    const auto before = sent_bytes();
    auto answer = worker.call(request, 30, {"/big", "/folder"});
    ASSERT_TRUE(answer.ok()) << answer.error().message;
    EXPECT_TRUE(answer->value("pong", false));
    // The first round sends the large file once (after the worker said it lacked it); later ones, none.
    const auto grew = sent_bytes() - before;
    if (round == 0) {
      EXPECT_GT(grew, big.size());
      EXPECT_LT(grew, 2 * big.size());
    } else {
      EXPECT_LT(grew, 4096u) << round;
    }
  }
  EXPECT_EQ(worker.starts(), 2);
  // The folder was laid out from its files under its own name, the file kept by its hash.
  int laid_out = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir / "cache" / "received" / "dirs"))
    if (entry.path().filename() == "small.txt") {
      ++laid_out;
      EXPECT_EQ(entry.path().parent_path().parent_path().filename(), "task");
    }
  EXPECT_EQ(laid_out, 1);
  EXPECT_TRUE(fs::exists(dir / "cache" / "received" / content_hash(big)));
  fs::remove_all(dir);
}

TEST(Evaluator, AKernelAskingFor100GiBIsRefusedAndRecorded) {
  EvalResult r = eval_rmsnorm("rmsnorm_allocates_100gib.cpp");
  EXPECT_EQ(r.status, EvalStatus::crash) << r.message;
  EXPECT_EQ(r.message, "crash: SIGSEGV");  // malloc refused under the address-space limit
}

TEST(Evaluator, ATimeBelowThePhysicsFloorIsRejected) {
  // Its byte formula claims 8 MB per element: the honest kernel then "beats" the machine's bandwidth.
  Evaluator overclaimed = evaluator_for(kSource + "/tests/data/tasks", "tiny/overclaimed");
  EvalResult r = overclaimed.evaluate(
      load_kernel(kSource + "/tests/data/tasks/tiny/overclaimed/seeds/cpu_naive.cpp"), "k.cpp", EvalOptions{});
  EXPECT_EQ(r.status, EvalStatus::rejected_cheat);
  EXPECT_NE(r.message.find("faster than physics at N=1024"), std::string::npos) << r.message;
}

TEST(Evaluator, ReverificationRunsInFreshWorkersAndTwiceForHugeClaims) {
  Evaluator scale = evaluator_for(kSource + "/tests/data/tasks", "tiny/scale");
  const Candidate seed = load_kernel(kSource + "/tests/data/tasks/tiny/scale/seeds/cpu_naive.cpp");
  EvalResult first = scale.evaluate(seed, "k.cpp", check_only());
  ASSERT_EQ(first.status, EvalStatus::ok) << first.message;
  EXPECT_FALSE(first.verified);
  EXPECT_EQ(scale.worker().starts(), 1);

  EvalResult again = scale.reverify(seed, "k.cpp", first, check_only());
  EXPECT_EQ(again.status, EvalStatus::ok) << again.message;
  EXPECT_TRUE(again.verified);
  EXPECT_NE(again.seed, first.seed);
  EXPECT_EQ(scale.worker().starts(), 2);

  first.speedup = 11;  // a claim of more than 10x is checked twice
  EXPECT_TRUE(scale.reverify(seed, "k.cpp", first, check_only()).verified);
  EXPECT_EQ(scale.worker().starts(), 4);
}

TEST(Evaluator, AFailedReverificationSaysSo) {
  Evaluator rmsnorm = evaluator_for(kSource + "/tasks", "llm/rmsnorm");
  EvalResult claimed;  // as if the endless kernel had passed once
  claimed.status = EvalStatus::ok;
  EvalResult r = rmsnorm.reverify(load_kernel(kSource + "/tests/kernels/rmsnorm_endless.cpp"), "e.cpp", claimed,
                                  check_only(1.5));
  EXPECT_EQ(r.status, EvalStatus::timeout);
  EXPECT_FALSE(r.verified);
  // Which stops the endless kernel first, the per-call watchdog or the 1.5 s timeout, depends on the
  // machine's load; either way the message must say the re-verification failed, and why.
  EXPECT_TRUE(r.message == "re-verification in a fresh worker failed: timeout after 1.5 s" ||
              r.message == std::string("re-verification in a fresh worker failed: ") + kforge::kWatchdogMessage)
      << r.message;
}

// A result with one ok shape at `dims`, timed at `median_us` (every statistic the median).
static EvalResult timed_at(const Bindings& dims, double median_us) {
  EvalResult r;
  r.status = EvalStatus::ok;
  ShapeResult shape;
  shape.dims = dims;
  shape.timing = TimingStats{.n = 100, .min_us = median_us, .median_us = median_us, .p20_us = median_us,
                             .p80_us = median_us, .mean_us = median_us};
  r.shapes.push_back(shape);
  return r;
}

TEST(Evaluator, ThePerCallWatchdogStopsAnEndlessKernelLongBeforeTheTimeout) {
  auto start = std::chrono::steady_clock::now();
  EvalResult r = eval_rmsnorm("rmsnorm_endless.cpp", check_only(120));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, EvalStatus::timeout);
  EXPECT_NE(r.message.find("per-call watchdog"), std::string::npos) << r.message;
  EXPECT_LT(seconds, 30);  // 2 s for a call on the smallest shape, not 120
}

TEST(Physics, AGpuFloorComesFromItsAttributes) {
  DeviceInfo h100;  // the attributes an H100 SXM reports
  h100.compute_units = 132, h100.clock_khz = 1980000, h100.memory_clock_khz = 2619000, h100.memory_bus_bits = 5120;
  h100.l2_bytes = 50 << 20;
  auto limits = device_limits(h100);
  ASSERT_TRUE(limits.has_value());
  EXPECT_NEAR(limits->read_rate(1e9) / 1e12, 3.35, 0.01);  // HBM3: 3.35 TB/s
  EXPECT_GT(limits->read_rate(1e6), limits->read_rate(1e9));  // an L2-sized working set may go faster
  EXPECT_FALSE(device_limits(DeviceInfo{}).has_value());

  // gemv 4096x4096 moves 67 MB: 20 us on an H100, so a 5 us median is not a kernel but a cheat.
  Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();
  EvalResult r = timed_at({{"N", 4096}, {"K", 4096}}, 5);
  apply_physics(gemv, *limits, r);
  EXPECT_EQ(r.status, EvalStatus::rejected_cheat);
  EXPECT_NE(r.message.find("faster than physics"), std::string::npos) << r.message;
  r.status = EvalStatus::ok;
  r.shapes[0].timing->median_us = 30;  // an honest 67% of roofline
  apply_physics(gemv, *limits, r);
  EXPECT_EQ(r.status, EvalStatus::ok);
  EXPECT_NEAR(r.shapes[0].roofline_pct, 67, 1);
}

// The cpu's caches are flushed before every timed call, so a cache-sized working set comes from
// memory too: its % of roofline is against the memory's rate, while its floor stays the cache's.
TEST(Physics, ACpusRooflineIsTheMemorysRateWhileItsFloorIsTheCachesRate) {
  MachineLimits limits;
  limits.read_bytes_per_s = {{16e3, 300e9}, {2e6, 150e9}, {128e6, 40e9}};
  limits.flops_per_s = 200e9;
  const MachineLimits roofline = host_roofline(limits);
  EXPECT_EQ(roofline.read_rate(1e6), 40e9);
  EXPECT_EQ(roofline.read_rate(1e9), 40e9);
  EXPECT_EQ(roofline.flops_per_s, 200e9);

  Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();  // 768 x 768: 2.4 MB, L2-sized
  EvalResult r = timed_at({{"N", 768}, {"K", 768}}, 60);
  const double bytes = static_cast<double>(gemv.bytes->eval(r.shapes[0].dims).value());
  apply_physics(gemv, limits, r, roofline);
  EXPECT_EQ(r.status, EvalStatus::ok);
  EXPECT_NEAR(r.shapes[0].roofline_pct, 100 * bytes / 40e9 / 60e-6, 1e-6);  // ~98%, not the L2's ~26%
  r.shapes[0].timing->median_us = r.shapes[0].timing->min_us = r.shapes[0].timing->p20_us = 5;
  apply_physics(gemv, limits, r, roofline);  // under half of 2.4 MB at 150 GB/s (16 us): impossible
  EXPECT_EQ(r.status, EvalStatus::rejected_cheat);
}

// Where every core was measured together, the cpu's roofline reads at that rate (not at one core's
// times the cores, which a VM's cores may not get together), and moves reads plus writes at most
// at the copy's rate: a gemv (nearly all reads) is bound by the read rate, a softmax (as many bytes
// written as read) by the copy's when the machine copies slower than twice its read rate.
TEST(Physics, ACpusRooflineReadsAtEveryCoresRateAndCopiesAtTheCopysRate) {
  MachineLimits limits;
  limits.read_bytes_per_s = {{16e3, 300e9}, {128e6, 40e9}};  // 40: one core's 20 x 2 cores
  limits.memory_read_bytes_per_s = 20e9;
  limits.memory_copy_bytes_per_s = 30e9;
  limits.flops_per_s = 200e9;
  const MachineLimits roofline = host_roofline(limits);
  EXPECT_EQ(roofline.read_rate(1e9), 20e9);
  auto pct = [&](const Task& task, const Bindings& dims, double median_us) {
    EvalResult r = timed_at(dims, median_us);
    apply_physics(task, limits, r, host_roofline(limits));
    EXPECT_EQ(r.status, EvalStatus::ok);
    return r.shapes[0].roofline_pct;
  };
  Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();
  const Bindings gemv_dims = {{"N", 4096}, {"K", 4096}};
  const double gemv_bytes = static_cast<double>(gemv.bytes->eval(gemv_dims).value());
  const double reads = 4.0 * (4096 * 4096 + 4096), writes = 4.0 * 4096;
  EXPECT_NEAR(pct(gemv, gemv_dims, 2000), 100 * gemv_bytes * reads / (reads + writes) / 20e9 / 2000e-6, 1e-6);
  Task softmax = find_task(kSource + "/tasks", "llm/softmax").value();
  const Bindings softmax_dims = {{"M", 128}, {"N", 131072}};
  const double softmax_bytes = 8.0 * 128 * 131072;  // x read, y written
  EXPECT_NEAR(pct(softmax, softmax_dims, 5000), 100 * softmax_bytes / 30e9 / 5000e-6, 1e-6);  // not / 20e9 / 2
  limits.memory_copy_bytes_per_s = 0;  // not measured (a probe file from before): reads only
  EXPECT_NEAR(pct(softmax, softmax_dims, 5000), 100 * softmax_bytes / 20e9 / 5000e-6, 1e-6);
}

// The probe's saved file keeps the best of every run (the floor: a busy machine only makes a probe
// slower) and the latest run (the roofline: a lucky past maximum must not make every later % look
// low). A file from a lucky past: the floor takes its rates, the % of roofline the latest's.
TEST(Physics, TheFloorUsesTheBestProbeEverSavedAndTheRooflineTheLatest) {
  const fs::path dir = fs::temp_directory_path() / ("kforge-probed-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string probe = (dir / "never-run.so").string();  // absent: any measuring would fail
  auto rates = [](double memory, double flops) {
    return nlohmann::json{{"read_bytes_per_s", {{16e3, 300e9}, {128e6, memory}}},
                          {"flops_per_s", flops},
                          {"memory_read_bytes_per_s", memory},
                          {"memory_copy_bytes_per_s", memory}};
  };
  nlohmann::json saved = rates(1e15, 1e15);
  saved["latest"] = rates(20e9, 200e9);
  std::ofstream(probe + ".limits.json") << saved.dump();
  auto limits = probe_limits(probe);
  ASSERT_TRUE(limits.ok()) << limits.error().message;
  EXPECT_EQ(limits->best.memory_read_bytes_per_s, 1e15);
  EXPECT_EQ(limits->latest.memory_read_bytes_per_s, 20e9);

  Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();
  const Bindings dims = {{"N", 8192}, {"K", 8192}};  // 268 MB, past the ladder's top: 13.4 ms at 20 GB/s
  auto physics = [&](const MachineLimits& floor, const MachineLimits& roofline, double median_us) {
    EvalResult r = timed_at(dims, median_us);
    apply_physics(gemv, floor, r, host_roofline(roofline));
    return r;
  };
  const EvalResult honest = physics(limits->best, limits->latest, 16000);
  EXPECT_EQ(honest.status, EvalStatus::ok);
  EXPECT_NEAR(honest.shapes[0].roofline_pct,
              100 * roofline_seconds(gemv, dims, host_roofline(limits->latest)) / 16000e-6, 1e-9);
  EXPECT_GT(honest.shapes[0].roofline_pct, 80) << "against the lucky past it would be next to nothing";
  // 5 ms: under half the latest rates' floor, but the floor is the best's, which rejects less.
  EXPECT_EQ(physics(limits->best, limits->latest, 5000).status, EvalStatus::ok);
  EXPECT_EQ(physics(limits->latest, limits->latest, 5000).status, EvalStatus::rejected_cheat);

  // A file from before the latest run was kept is measured again (here: the probe cannot run).
  const std::string old_probe = (dir / "old-never-run.so").string();
  std::ofstream(old_probe + ".limits.json") << rates(1e15, 1e15).dump();
  EXPECT_FALSE(probe_limits(old_probe).ok());
  fs::remove_all(dir);
}

// With the real probe: an old file's best survives a fresh run, whose rates become the latest.
TEST(Physics, AFreshProbeRunKeepsTheSavedBestAndBecomesTheLatest) {
  auto binary = compile_probe(compiler());
  ASSERT_TRUE(binary.ok()) << binary.error().message;
  const fs::path dir = fs::temp_directory_path() / ("kforge-probe-run-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string probe = (dir / "probe.so").string();  // a copy: the shared cache's file stays as it is
  fs::copy_file(binary->path, probe);
  // A file from before the latest was kept, with a lucky past no machine reaches: its ladder's
  // steps as the probe's (each level of the cache, then memory: see read_ladder).
  nlohmann::json ladder = nlohmann::json::array();
  for (long bytes : {16l << 10, 256l << 10, 2l << 20, 16l << 20, 128l << 20}) ladder.push_back({bytes, 1e18});
  if (memory_probe_bytes() > (128l << 20)) ladder.push_back({memory_probe_bytes(), 1e18});
  const nlohmann::json old = {{"read_bytes_per_s", ladder},
                             {"flops_per_s", 1e18},
                             {"memory_read_bytes_per_s", 1e18},
                             {"memory_copy_bytes_per_s", 1e18}};
  std::ofstream(probe + ".limits.json") << old.dump();
  auto limits = probe_limits(probe);
  ASSERT_TRUE(limits.ok()) << limits.error().message;
  EXPECT_EQ(limits->best.read_bytes_per_s.back().second, 1e18);
  EXPECT_EQ(limits->best.memory_read_bytes_per_s, 1e18);
  EXPECT_EQ(limits->best.flops_per_s, 1e18);
  const MachineLimits& latest = limits->latest;
  EXPECT_GT(latest.memory_read_bytes_per_s, 0);
  EXPECT_LT(latest.memory_read_bytes_per_s, 1e15);
  EXPECT_GT(latest.memory_copy_bytes_per_s, 0);
  EXPECT_LT(latest.flops_per_s, 1e15);
  // Saved so: the best at the top level (as older kforge reads it), the latest beside it.
  const auto saved = nlohmann::json::parse(read_file(probe + ".limits.json").value());
  EXPECT_EQ(saved.at("memory_read_bytes_per_s").get<double>(), 1e18);
  EXPECT_EQ(saved.at("latest").at("memory_read_bytes_per_s").get<double>(), latest.memory_read_bytes_per_s);
  fs::remove_all(dir);
}

TEST(Physics, AGpusRooflineIsItsMeasuredBandwidthWhileItsFloorStaysGenerous) {
  DeviceInfo h100;
  h100.compute_units = 132, h100.clock_khz = 1980000, h100.memory_clock_khz = 2619000, h100.memory_bus_bits = 5120;
  h100.l2_bytes = 50 << 20;
  const double copy = 3.0e12;  // what its copy kernel moves: below the 3.35 TB/s of the attributes
  auto limits = device_limits(h100, copy);
  ASSERT_TRUE(limits.has_value());
  EXPECT_EQ(limits->read_rate(1e9), device_limits(h100)->read_rate(1e9)) << "the floor is the attributes'";
  EXPECT_EQ(device_limits(h100, 5e12)->read_rate(1e9), 5e12) << "and never below what the device was seen doing";
  const MachineLimits roofline = device_roofline(*limits, copy);
  EXPECT_EQ(roofline.read_rate(1e6), copy) << "L2 is flushed before every timed call";
  EXPECT_EQ(roofline.read_rate(1e9), copy);
  EXPECT_EQ(device_roofline(*limits, 0).read_rate(1e9), limits->read_rate(1e9)) << "nothing measured";

  Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();
  EvalResult r = timed_at({{"N", 4096}, {"K", 4096}}, 30);
  apply_physics(gemv, *limits, r, roofline);
  EXPECT_EQ(r.status, EvalStatus::ok);
  const double bytes = static_cast<double>(gemv.bytes->eval(r.shapes[0].dims).value());
  EXPECT_NEAR(r.shapes[0].floor_us, bytes / copy * 1e6, 1e-6);
  EXPECT_NEAR(r.shapes[0].roofline_pct, 100 * bytes / copy / 30e-6, 1e-6);  // 75%, not the attributes' 67%
  // 10.5 us: under half the measured floor (11.2 us), above half the attributes' (10 us): the generous
  // floor decides, so a device that beats its own copy kernel is never called impossible.
  r.shapes[0].timing->median_us = r.shapes[0].timing->min_us = r.shapes[0].timing->p20_us = 10.5;
  apply_physics(gemv, *limits, r, roofline);
  EXPECT_EQ(r.status, EvalStatus::ok) << r.message;
  EXPECT_GT(r.shapes[0].roofline_pct, 200);
}

namespace {

TEST(Evaluator, AVendorBaselineIsTimedWhereItLinksElseTheNaiveSeed) {
  const std::string root = kSource + "/tests/data/tasks";
  EvalOptions options;
  options.max_time_per_shape_s = 0.1;
  for (const auto& [task, baseline] : {std::pair{"tiny/blas_scale", "cpu_openblas.cpp"},
                                       std::pair{"tiny/missing_vendor", "cpu_naive.cpp"}}) {
    Evaluator e = evaluator_for(root, task);
    EvalResult r = e.evaluate(load_kernel(root + "/" + task + "/seeds/cpu_naive.cpp"), "k.cpp", options);
    ASSERT_EQ(r.status, EvalStatus::ok) << task << ": " << r.message;
    EXPECT_EQ(r.baseline, baseline) << task;
    for (const auto& s : r.shapes)
      if (s.bench) {
        EXPECT_GT(s.speedup, 0) << task << ": the baseline was timed";
      }
  }
}

TEST(Evaluator, ABaselineThatComputesSomethingElseFailsTheEvaluationAndBlamesTheTask) {
  const std::string root = kSource + "/tests/data/tasks";
  EvalOptions options;
  options.max_time_per_shape_s = 0.1;
  Evaluator e = evaluator_for(root, "tiny/wrong_baseline");
  EvalResult r = e.evaluate(load_kernel(root + "/tiny/wrong_baseline/seeds/cpu_naive.cpp"), "k.cpp", options);
  EXPECT_EQ(r.status, EvalStatus::runtime_error) << r.message;
  EXPECT_NE(r.message.find("the task's baseline computed something else"), std::string::npos) << r.message;
  // Correctness alone times no baseline: the candidate is judged on its own.
  EXPECT_EQ(e.evaluate(load_kernel(root + "/tiny/wrong_baseline/seeds/cpu_naive.cpp"), "k.cpp", check_only()).status,
            EvalStatus::ok);
}

// A timing-only baseline (bench_memops' memory twins move an op's bytes without computing it): the
// same wrong baseline is timed, not compared, and the candidate is still checked.
TEST(Evaluator, ATimingOnlyBaselineIsTimedButNotCompared) {
  const std::string root = kSource + "/tests/data/tasks";
  EvalOptions options;
  options.max_time_per_shape_s = 0.1;
  options.check_baseline = false;
  Evaluator e = evaluator_for(root, "tiny/wrong_baseline");
  EvalResult r = e.evaluate(load_kernel(root + "/tiny/wrong_baseline/seeds/cpu_naive.cpp"), "k.cpp", options);
  ASSERT_EQ(r.status, EvalStatus::ok) << r.message;
  for (const auto& s : r.shapes)
    if (s.bench) {
      EXPECT_GT(s.speedup, 0) << "the baseline was timed";
    }
  auto forgets_alpha = parse_candidate(
      "// @kforge entry: scale_f32\n"
      "extern \"C\" void scale_f32(const float* x, float* y, int N, float) { for (int i = 0; i < N; ++i) y[i] = x[i]; }\n",
      "forgets_alpha.cpp");
  ASSERT_TRUE(forgets_alpha) << forgets_alpha.error().message;
  EXPECT_EQ(e.evaluate(*forgets_alpha, "forgets_alpha.cpp", options).status, EvalStatus::incorrect);
}

TEST(TaskLoaderBaseline, ABadBaselineTableIsRefusedWithItsField) {
  const fs::path dir = fs::temp_directory_path() / ("kforge-baseline-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(kSource + "/tests/data/tasks/tiny/blas_scale", dir / "blas_scale", fs::copy_options::recursive);
  auto toml = read_file((dir / "blas_scale/task.toml").string()).value();
  toml.replace(toml.find("baselines/cpu_openblas.cpp"), 26, "baselines/missing.cpp");
  toml.replace(toml.find("\"openblas\""), 10, "\"-lm; rm\"");
  std::ofstream((dir / "blas_scale/task.toml").string()) << toml << "\n";
  auto task = load_task((dir / "blas_scale").string());
  ASSERT_FALSE(task.ok());
  EXPECT_NE(task.error().message.find("baseline.cpu: expected a file of the task folder"), std::string::npos)
      << task.error().message;
  EXPECT_NE(task.error().message.find("baseline.cpu_libs: expected library names"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TaskLoaderBaseline, ACudaBaselineIsAFileOfTheTaskFolder) {
  const Task gemv = find_task(kSource + "/tasks", "llm/gemv").value();
  EXPECT_EQ(gemv.cuda_baseline_path, kSource + "/tasks/llm/gemv/baselines/cuda_cublas.cpp");
  const fs::path dir = fs::temp_directory_path() / ("kforge-cuda-baseline-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(kSource + "/tests/data/tasks/tiny/blas_scale", dir / "blas_scale", fs::copy_options::recursive);
  auto toml = read_file((dir / "blas_scale/task.toml").string()).value();
  toml.replace(toml.find("baseline = {"), 12, "baseline = { cuda = \"baselines/nope.cpp\", rocm = \"x.cpp\",");
  std::ofstream((dir / "blas_scale/task.toml").string()) << toml << "\n";
  auto task = load_task((dir / "blas_scale").string());
  ASSERT_FALSE(task.ok());
  EXPECT_NE(task.error().message.find("baseline.cuda: expected a file of the task folder"), std::string::npos)
      << task.error().message;
  EXPECT_NE(task.error().message.find("baseline: unknown key 'rocm' (known: cpu, cpu_libs, cuda)"), std::string::npos)
      << task.error().message;
  fs::remove_all(dir);
}


// A worker whose compile target differs from this side's (a pool's, agent/worker_pool.cpp) is sent
// the compile requests and compiles every binary itself, through its own compile cache; a candidate
// that does not compile there is its compile_error, with what its compiler said.
class WorkerCompilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::path(::testing::TempDir()) / ("kforge-worker-compiles-" + std::to_string(getpid()));
    fs::remove_all(cache_);
    worker_ = std::make_shared<Worker>(std::vector<std::string>{
        "env", "KFORGE_CACHE_DIR=" + cache_.string(), fs::read_symlink("/proc/self/exe").string(), "worker"});
  }
  void TearDown() override { fs::remove_all(cache_); }
  // The binaries in the worker's compile cache, by extension (.so, .cubin).
  int binaries(const std::string& backend, const std::string& extension) const {
    std::error_code ec;
    int n = 0;
    for (const auto& f : fs::directory_iterator(cache_ / backend, ec)) n += f.path().extension() == extension;
    return n;
  }
  fs::path cache_;
  std::shared_ptr<Worker> worker_;
};

TEST_F(WorkerCompilesTest, OnTheCpu) {
  auto evaluator = Evaluator::create(find_task(kSource + "/tests/data/tasks", "search/scale").value(), compiler(), worker_);
  ASSERT_TRUE(evaluator.ok()) << evaluator.error().message;
  evaluator->compile_on_worker(true);
  const std::string seed = kSource + "/tests/data/tasks/search/scale/seeds/cpu_naive.cpp";
  EvalResult r = evaluator->evaluate(load_kernel(seed), "cpu_naive.cpp", check_only());
  EXPECT_EQ(r.status, EvalStatus::ok) << r.message;
  EXPECT_GT(r.code_bytes, 0) << "the worker's own compile's";
  EXPECT_EQ(binaries("cpu", ".so"), 3) << "the reference, the machine probe and the candidate, compiled there";
  EXPECT_TRUE(evaluator->check_reference().ok());

  auto broken = parse_candidate(
      "// @kforge entry: f\nextern \"C\" void f(const float* x, float* y, int N, float alpha) { oops; }\n", "broken.cpp");
  ASSERT_TRUE(broken.ok());
  r = evaluator->evaluate(*broken, "broken.cpp", check_only());
  EXPECT_EQ(r.status, EvalStatus::compile_error) << r.message;
  EXPECT_NE(r.message.find("was not declared"), std::string::npos) << r.message;
  EXPECT_NE(r.log.find("broken.cpp:2"), std::string::npos) << r.log;
  EXPECT_TRUE(worker_->running()) << "a compile error costs the worker nothing";
}

// Without a GPU the evaluation fails in the worker, but only after the worker compiled the CUDA
// candidate, its baseline and copy probe, and the host's reference itself.
TEST_F(WorkerCompilesTest, OnCuda) {
  auto cuda = make_backend("cuda", CompileCache::open(KFORGE_TEST_CACHE_DIR).value()).value();
  if (Status s = cuda->compiler_status(); !s) GTEST_SKIP() << s.error().message;
  if (cuda->devices().ok()) GTEST_SKIP() << "a GPU is here: tests/test_gpu.cpp evaluates on it";
  auto evaluator = Evaluator::create(find_task(kSource + "/tasks", "llm/rmsnorm").value(), *cuda, worker_);
  ASSERT_TRUE(evaluator.ok()) << evaluator.error().message;
  evaluator->compile_on_worker(true);
  const std::string seed = kSource + "/tasks/llm/rmsnorm/seeds/cuda_naive.cu";
  EvalOptions timed = check_only();
  timed.time_bench_shapes = true;
  EvalResult r = evaluator->evaluate(load_kernel(seed), "cuda_naive.cu", timed);
  EXPECT_EQ(r.status, EvalStatus::runtime_error) << r.message;
  EXPECT_NE(r.message.find("libcuda"), std::string::npos) << r.message;
  EXPECT_GE(r.usage.registers, 1) << "from the worker's compile";
  EXPECT_GT(r.code_bytes, 0);
  EXPECT_EQ(binaries("cuda", ".cubin"), 2) << "the candidate (the naive baseline too) and the copy probe";
  EXPECT_GE(binaries("cpu", ".so"), 1) << "the reference";

  auto broken = parse_candidate("// @kforge entry: f\n// @kforge launch: grid=(1) block=(1)\n"
                                "extern \"C\" __global__ void f(const float* x, const float* w, float* y, int M, int N,"
                                " float eps) { oops; }\n",
                                "broken.cu");
  ASSERT_TRUE(broken.ok()) << broken.error().message;
  r = evaluator->evaluate(*broken, "broken.cu", check_only());
  EXPECT_EQ(r.status, EvalStatus::compile_error) << r.message;
  EXPECT_NE(r.log.find("oops"), std::string::npos) << r.log;
}

}  // namespace
