// The search: its parts on their own (param rewriting, dedup, the population), then whole searches
// of tests/data/tasks/search/scale, offline (reproducible with a seed, resumable after SIGKILL)
// and against a fake LLM server that misbehaves in every way the outside world does, and what
// overlaps with what: LLM calls, the compiles of their kernels, evaluations.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/search.hpp"
#include "tests/fake_llm_server.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

const std::string kSource = KFORGE_SOURCE_DIR;

const Backend& compiler() {  // the cpu backend over the tests' own compile cache
  static const auto host = make_host_backend({.compiler = "", .cache_dir = KFORGE_TEST_CACHE_DIR});
  return *host;
}

Candidate candidate(const std::string& source) { return parse_candidate(source, "t.cpp").value(); }

const std::string kTunable =
    "// @kforge entry: f\n"
    "// @kforge about: a kernel\n"
    "// @kforge param: A=2 in {1,2,4}\n"
    "// @kforge param: B=16 in {8,16,32,64}\n"
    "extern \"C\" void f(const float* x, float* y, int N) { for (int i = 0; i < N; ++i) y[i] = x[i]; }\n";

TEST(SearchParts, WithParamChangesOnlyThatValue) {
  const std::string s = with_param(kTunable, "B", 64);
  EXPECT_EQ(candidate(s).param_bindings(), (Bindings{{"A", 2}, {"B", 64}}));
  EXPECT_EQ(with_param(s, "B", 16), kTunable);
  EXPECT_EQ(with_param(kTunable, "C", 1), kTunable) << "an unknown param changes nothing";
}

TEST(SearchParts, NormalisedSourcesIgnoreCommentsAndWhitespaceButNotParams) {
  std::string reformatted = kTunable;
  reformatted.replace(reformatted.find("for (int i"), 10, "for  (int   i /* loop */");
  reformatted.replace(reformatted.find("a kernel"), 8, "another description");
  reformatted += "\n// a trailing comment\n";
  EXPECT_EQ(normalized_source(reformatted), normalized_source(kTunable));
  EXPECT_NE(normalized_source(with_param(kTunable, "A", 4)), normalized_source(kTunable));
  EXPECT_EQ(family_hash(candidate(with_param(kTunable, "A", 4))), family_hash(candidate(kTunable)));
}

Program program(const std::string& source, const std::string& status, double fitness, int island = 0) {
  Program p;
  p.candidate = candidate(source);
  p.key = content_hash(source);
  p.origin = p.key.substr(0, 6);
  p.status = status;
  p.fitness = fitness;
  p.island = island;
  return p;
}

TEST(SearchParts, ParentsAreCorrectProgramsAndTheFitterAreDrawnMoreOften) {
  Population population(2);
  population.add(program(kTunable, "ok", 1.0), true);
  population.add(program(with_param(kTunable, "A", 4), "ok", 3.0, 0));
  population.add(program(with_param(kTunable, "A", 1), "incorrect", 0, 0));
  EXPECT_EQ(population.last_failure(0), 2);
  EXPECT_EQ(population.last_failure(1), -1);
  std::mt19937_64 rng(7);
  std::map<int, int> drawn;
  for (int i = 0; i < 2000; ++i) drawn[population.select_parent(0, rng)]++;
  EXPECT_EQ(drawn.count(2), 0u) << "a failed program is never a parent";
  EXPECT_GT(drawn[1], 3 * drawn[0]) << "the fitter elite dominates";
  EXPECT_EQ(population.best(), 1);
  // Island 1 has only the seed: island 0's best comes from the global archive (p 0.2), until a
  // migration makes it an elite of island 1 too.
  int before = 0, after = 0;
  for (int i = 0; i < 2000; ++i) before += population.select_parent(1, rng) == 1;
  population.migrate();
  for (int i = 0; i < 2000; ++i) after += population.select_parent(1, rng) == 1;
  EXPECT_LT(before, 400);
  EXPECT_GT(after, 2 * before);
}

TEST(SearchParts, ChildrenLowerAParentsWeight) {
  Population population(1);
  population.add(program(kTunable, "ok", 2.0));
  population.add(program(with_param(kTunable, "A", 4), "ok", 2.0));
  population.at(0).children = 50;
  std::mt19937_64 rng(3);
  std::map<int, int> drawn;
  for (int i = 0; i < 2000; ++i) drawn[population.select_parent(0, rng)]++;
  EXPECT_GT(drawn[1], 5 * drawn[0]);
}

TEST(SearchParts, APopulationSurvivesItsJson) {
  Population population(3);
  population.add(program(kTunable, "ok", 1.0), true);
  Program gpu = program(with_param(kTunable, "B", 8), "ok", 1.5, 2);
  gpu.usage = {72, 0, 1024};
  gpu.code_bytes = 9000;
  population.add(gpu);
  population.add(program(with_param(kTunable, "B", 32), "compile_error", 0, 1));
  population.at(0).children = 4;
  population.migrate();
  std::map<std::string, std::string> sources;
  for (int i = 0; i < population.size(); ++i) sources[population.at(i).key] = population.at(i).candidate.source;
  auto restored = Population::from_json(population.to_json(), [&](const std::string& key) -> Result<Candidate> {
    return parse_candidate(sources.at(key), "t.cpp");
  });
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(restored->to_json(), population.to_json());
  EXPECT_EQ(restored->at(1).candidate.param_bindings(), population.at(1).candidate.param_bindings());
  EXPECT_EQ(restored->at(1).usage.registers, 72);
  EXPECT_EQ(restored->at(1).usage.spill_bytes, 0);
  EXPECT_EQ(restored->at(1).usage.shared_bytes, 1024);
  EXPECT_EQ(restored->at(1).code_bytes, 9000);
  EXPECT_EQ(restored->at(0).usage.registers, -1);

  // A state saved before resources were reported (cpu kernels only, no resource fields, elites of
  // three numbers) reads back as the same population, resources unknown.
  Population cpu(2);
  cpu.add(program(kTunable, "ok", 1.0), true);
  cpu.add(program(with_param(kTunable, "B", 8), "ok", 1.5, 1));
  auto old = cpu.to_json();
  for (auto& p : old["programs"])
    for (const char* field : {"registers", "spill_bytes", "shared_bytes", "code_bytes"}) p.erase(std::string(field));
  for (auto& island : old["islands"])
    for (auto& e : island["elites"]) e.erase(e.begin() + 3);
  auto older = Population::from_json(old, [&](const std::string& key) -> Result<Candidate> {
    return parse_candidate(sources.at(key), "t.cpp");
  });
  ASSERT_TRUE(older.ok()) << older.error().message;
  EXPECT_EQ(older->to_json(), cpu.to_json());

  auto broken = population.to_json();
  broken["islands"][0]["members"].push_back(99);
  EXPECT_FALSE(Population::from_json(broken, [&](const std::string& key) -> Result<Candidate> {
                 return parse_candidate(sources.at(key), "t.cpp");
               }).ok());
}

TEST(SearchParts, GpuKernelsOfOneFamilyAndParamButOtherRegisterPressureKeepAnEliteEach) {
  Population population(1);
  auto gpu = [&](const std::string& key, double fitness, ResourceUsage usage) {
    Program p = program(kTunable, "ok", fitness);
    p.key = key;
    p.usage = usage;
    return population.add(p);
  };
  // Each elite as saved: [family bin, param bin, program, register bin].
  auto elites = [&] { return population.to_json()["islands"][0]["elites"]; };
  const int light = gpu("light", 1.0, {40, 0, 0});
  const int heavy = gpu("heavy", 2.0, {200, 0, 0});
  ASSERT_EQ(elites().size(), 2u) << "the fitter 200-register kernel does not evict the 40-register one";
  EXPECT_EQ(elites()[0][2], light);
  EXPECT_EQ(elites()[1][2], heavy);
  gpu("spilling", 3.0, {40, 16, 0});
  EXPECT_EQ(elites().size(), 3u) << "a kernel that spills is a bin of its own";
  const int lighter = gpu("lighter", 1.5, {64, 0, 0});
  ASSERT_EQ(elites().size(), 3u) << "40 and 64 registers: one occupancy step, one cell";
  EXPECT_EQ(elites()[0][2], lighter) << "the fitter of the two holds it";
}

TEST(SearchParts, CpuKernelsKeepTheirCellsOfFamilyAndParam) {
  // No registers reported: the cell is (family bin, first param's bin) as before registers were
  // reported, so offline CPU searches keep choosing as they did.
  Population population(1);
  Program a = program(kTunable, "ok", 1.0), b = program(kTunable, "ok", 2.0);
  b.key = "b";
  b.code_bytes = 1 << 20;  // the code size is reported, but is no descriptor
  population.add(a);
  population.add(b);
  population.add(program(with_param(kTunable, "A", 4), "ok", 1.0));
  const int family =
      static_cast<int>(std::stoull(family_hash(a.candidate).substr(0, 8), nullptr, 16) % Population::kBins);
  // A=2 is choice 1 of 3 (bin 1 * 8 / 3 = 2), A=4 choice 2 (bin 5); b, the fitter, holds the first.
  EXPECT_EQ(population.to_json()["islands"][0]["elites"],
            nlohmann::json::parse(fmt::format("[[{0}, 2, 1, -1], [{0}, 5, 2, -1]]", family)));
}

TEST(SearchParts, OfflineProposalsNeverRepeatAndEndWhenTheSpaceIsExhausted) {
  Population population(2);
  population.add(program(kTunable, "ok", 1.0), true);
  std::set<std::string> seen{content_hash(normalized_source(kTunable))};
  std::mt19937_64 rng(1);
  OfflineCounters counters;
  int proposed = 0;
  while (auto p = propose_offline(population, rng, seen, counters)) {
    Program child = program(p->candidate.source, "ok", 1.0 + 0.01 * ++proposed, p->island);
    child.parent_key = p->parent_key;
    population.add(child);
  }
  EXPECT_EQ(proposed, 3 * 4 - 1) << "every other point of the 3x4 param space, once";
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(counters.duplicates_in_row, kMaxDuplicatesInRowOffline);
}

TEST(SearchParts, PromptsCarryTheTaskTheParentAndTheLatestFailure) {
  Task task = find_task(kSource + "/tests/data/tasks", "search/scale").value();
  Population population(1);
  Program seed = program(read_file(task.seed_paths[1]).value(), "ok", 1.0);
  population.add(seed, true);
  Program failed = program(with_param(seed.candidate.source, "UNROLL", 8), "compile_error", 0);
  failed.feedback = "error: 'undeclared_thing' was not declared in this scope";
  failed.parent_key = seed.key;
  population.add(failed);
  PromptContext context{kSource + "/prompts", "cpu", "Test CPU", "x86-64-avx2", "", ""};
  for (const std::string kind : {"rewrite", "diff", "fix"}) {
    auto messages = build_messages(kind, task, context, population, kind == "fix" ? 1 : 0);
    ASSERT_TRUE(messages.ok()) << kind << ": " << messages.error().message;
    ASSERT_EQ(messages->size(), 2u);
    EXPECT_NE((*messages)[0].content.find("The kernel contract: CPU"), std::string::npos);
    EXPECT_NE((*messages)[0].content.find("AVX2"), std::string::npos) << "the hardware notes";
    const std::string& user = (*messages)[1].content;
    EXPECT_NE(user.find("extern \"C\" void scale_unrolled(const float* x, float* y, int N, float alpha);"),
              std::string::npos)
        << user;
    EXPECT_NE(user.find("undeclared_thing"), std::string::npos) << kind << ": the failure is fed back";
    EXPECT_NE(user.find("N=4096"), std::string::npos);
  }
  EXPECT_FALSE(build_messages("crossover", task, context, population, 0).ok()) << "a crossover needs two parents";
}

TEST(SearchParts, TheExemplarIsTheCategorysFileElseASiblingTasksOptimisedSeed) {
  auto tasks = load_tasks(kSource + "/tasks", "llm");
  ASSERT_TRUE(tasks.ok()) << tasks.error().message;
  auto task = [&](const std::string& id) {
    return *std::find_if(tasks->begin(), tasks->end(), [&](const Task& t) { return t.id() == id; });
  };
  const fs::path prompts = fs::temp_directory_path() / ("kforge-exemplars-" + std::to_string(getpid()));
  fs::remove_all(prompts);
  fs::create_directories(prompts / "exemplars");
  // No exemplar file: the other activation task's optimised seed, never a naive one, never its own.
  const std::string sibling = category_exemplar(task("llm/softmax"), *tasks, "cpu", prompts.string());
  const Task& swiglu = task("llm/swiglu");
  EXPECT_TRUE(std::any_of(swiglu.seed_paths.begin(), swiglu.seed_paths.end(), [&](const std::string& path) {
    return path.find("/cpu_") != std::string::npos && path.find("naive") == std::string::npos &&
           read_file(path).value() == sibling;
  })) << sibling;
  EXPECT_EQ(category_exemplar(task("llm/rope"), *tasks, "cpu", prompts.string()), "")
      << "the only math task has no sibling";
  // The category's file wins, per backend: .cpp for cpu, .cu for cuda and hip.
  std::ofstream(prompts / "exemplars" / "activation.cpp") << "// the cpu exemplar\n";
  std::ofstream(prompts / "exemplars" / "activation.cu") << "// the cuda exemplar\n";
  EXPECT_EQ(category_exemplar(task("llm/softmax"), *tasks, "cpu", prompts.string()), "// the cpu exemplar\n");
  EXPECT_EQ(category_exemplar(task("llm/softmax"), *tasks, "cuda", prompts.string()), "// the cuda exemplar\n");
  EXPECT_EQ(category_exemplar(task("llm/softmax"), *tasks, "hip", prompts.string()), "// the cuda exemplar\n");
  fs::remove_all(prompts);
}

TEST(SearchParts, EveryCategoryHasAnExemplarForEveryBackend) {
  for (const auto& category : task_categories())
    for (const std::string ext : {".cpp", ".cu"}) {
      const auto path = fs::path(kSource) / "prompts" / "exemplars" / (category + ext);
      auto source = read_file(path.string());
      ASSERT_TRUE(source.ok()) << path;
      EXPECT_TRUE(parse_candidate(*source, path.string()).ok()) << path << ": a kernel in the header format";
    }
}

// ---- whole searches --------------------------------------------------------------------------

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kforge-search-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Evaluator evaluator(const std::string& task = "search/scale") {
    return Evaluator::create(find_task(kSource + "/tests/data/tasks", task).value(), compiler()).value();
  }
  static SearchOptions check_only(int evaluations, std::uint64_t seed = 42) {
    SearchOptions o;
    o.evaluations = evaluations;
    o.seed = seed;
    o.eval.time_bench_shapes = false;  // every correct kernel scores alike: the choices are the RNG's alone
    o.eval.timeout_s = 60;
    return o;
  }
  // The kernels a run evaluated, in order (a re-verification is not a new one).
  static std::vector<std::string> evaluated(const KernelStore& store, const std::string& run_id) {
    std::vector<std::string> keys;
    const auto history = store.task_history("search/scale").value();
    for (const auto& e : history)
      if (e.run_id == run_id && (keys.empty() || keys.back() != e.kernel_key)) keys.push_back(e.kernel_key);
    return keys;
  }
  Result<TaskOutcome> run(KernelStore& store, const std::string& run_id, const SearchOptions& options,
                          LlmClient* llm = nullptr, const std::optional<std::string>& resumed = std::nullopt,
                          const std::string& task = "search/scale", SearchReporter reporter = {}) {
    PromptContext prompts{kSource + "/prompts", "cpu", "Test CPU", "x86-64-avx2", "", ""};
    Search search(options, store, run_id, "cpu:test", prompts, llm, std::move(reporter));
    return search.run(evaluator(task), resumed, steady_seconds() + 600);
  }
  std::string dir_;
};

TEST_F(SearchTest, OfflineWithASeedProposesTheSameCandidatesInTheSameOrder) {
  auto store = KernelStore::open(dir_ + "/k.db").value();
  auto a = run(store, "a", check_only(8, 5));
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->evaluations, 8);
  EXPECT_EQ(a->correct, 8);
  EXPECT_EQ(a->stop_reason, "evaluation budget spent (8 evaluations)");
  ASSERT_TRUE(run(store, "b", check_only(8, 5)).ok());
  ASSERT_TRUE(run(store, "c", check_only(8, 6)).ok());
  const auto keys_a = evaluated(store, "a");
  ASSERT_EQ(keys_a.size(), 8u);
  EXPECT_EQ(evaluated(store, "b"), keys_a);
  EXPECT_NE(evaluated(store, "c"), keys_a) << "another seed, other choices";
  EXPECT_EQ(std::set<std::string>(keys_a.begin(), keys_a.end()).size(), 8u) << "no candidate twice";
  // Every derived kernel names its parent and operator in the library.
  for (std::size_t i = 2; i < keys_a.size(); ++i) {
    auto k = store.find_kernel(keys_a[i]).value();
    ASSERT_TRUE(k);
    EXPECT_FALSE(k->parent_key.empty());
    EXPECT_NE(k->operator_name, "seed");
    EXPECT_EQ(k->run_id, "a");
  }
}

TEST_F(SearchTest, CandidatesThatCompileToTheSameCodeAreEvaluatedOnce) {
  // search/folded's one seed has CHECKED in {1,2,3}, used only by a static_assert: three sources,
  // one binary. The seed is evaluated; both variants are duplicates by their code.
  auto store = KernelStore::open(dir_ + "/k.db").value();
  auto outcome = run(store, "a", check_only(10), nullptr, std::nullopt, "dedup/folded");
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->evaluations, 1);
  EXPECT_GE(outcome->duplicates, 2);
  EXPECT_NE(outcome->stop_reason.find("exhausted"), std::string::npos) << outcome->stop_reason;
  EXPECT_EQ(store.task_history("dedup/folded").value().size(), 1u) << "the seed alone";
}

// Without a GPU every CUDA evaluation fails in the worker, but each kernel compiled here first:
// the resources ptxas reported reach the result, the library and the search's saved programs.
TEST_F(SearchTest, ACudaKernelsResourcesAreReportedEvenWithoutADevice) {
  auto cuda = make_backend("cuda", CompileCache::open(KFORGE_TEST_CACHE_DIR).value()).value();
  if (Status s = cuda->compiler_status(); !s) GTEST_SKIP() << s.error().message;
  if (cuda->devices().ok()) GTEST_SKIP() << "a GPU is here: tests/test_gpu.cpp evaluates on it";
  auto evaluator = Evaluator::create(find_task(kSource + "/tasks", "llm/rmsnorm").value(), *cuda);
  ASSERT_TRUE(evaluator.ok()) << evaluator.error().message;
  const std::string path = kSource + "/tasks/llm/rmsnorm/seeds/cuda_naive.cu";
  const EvalResult r =
      evaluator->evaluate(parse_candidate(read_file(path).value(), path).value(), "cuda_naive.cu", check_only(1).eval);
  EXPECT_EQ(r.status, EvalStatus::runtime_error) << r.message;
  EXPECT_GE(r.usage.registers, 1);
  EXPECT_EQ(r.usage.spill_bytes, 0);
  EXPECT_GE(r.usage.shared_bytes, 0);
  EXPECT_GT(r.code_bytes, 0);
  const EvalResult back = eval_result_from_json(to_json(r)).value();
  EXPECT_EQ(back.usage.registers, r.usage.registers);
  EXPECT_EQ(back.code_bytes, r.code_bytes);

  auto store = KernelStore::open(dir_ + "/k.db").value();
  SearchOptions options = check_only(2);
  options.backend = "cuda";
  PromptContext prompts{kSource + "/prompts", "cuda", "none", "sm_90", "", ""};
  Search search(options, store, "gpu", "nvidia:sm_90:132", prompts, nullptr, {});
  auto outcome = search.run(*evaluator, std::nullopt, steady_seconds() + 600);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  const auto history = store.task_history("llm/rmsnorm").value();
  ASSERT_EQ(history.size(), 2u) << "the two CUDA seeds";
  for (const auto& e : history) {
    EXPECT_EQ(e.status, "runtime_error") << e.message;
    EXPECT_GE(e.registers, 1);
    EXPECT_EQ(e.spill_bytes, 0);
    EXPECT_GE(e.shared_bytes, 0);
    EXPECT_GT(e.code_bytes, 0);
  }
  EXPECT_EQ(history[0].registers, r.usage.registers) << "cuda_naive.cu, the first seed";
  const auto state = nlohmann::json::parse(store.search_states("gpu").value().at("llm/rmsnorm"));
  ASSERT_EQ(state.at("population").at("programs").size(), 2u);
  for (const auto& p : state.at("population").at("programs")) EXPECT_GE(p.at("registers").get<int>(), 1);
}

TEST_F(SearchTest, AKilledSearchResumesWithNothingLostNothingRepeatedAndTheSameChoices) {
  const std::string path = dir_ + "/k.db";
  {
    auto store = KernelStore::open(path).value();
    ASSERT_TRUE(run(store, "whole", check_only(10)).ok());
  }
  const pid_t child = fork();
  if (child == 0) {  // searches until killed
    auto store = KernelStore::open(path).value();
    auto r = run(store, "killed", check_only(10));
    _exit(r.ok() ? 0 : 1);
  }
  // Kill it once it has stored a few evaluations, wherever it is.
  for (int i = 0; i < 3000; ++i) {
    auto store = KernelStore::open(path, true).value();
    if (evaluated(store, "killed").size() >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto store = KernelStore::open(path).value();
  const auto before = evaluated(store, "killed");
  ASSERT_GE(before.size(), 4u);
  ASSERT_LT(before.size(), 10u) << "killed before the end";
  auto states = store.search_states("killed").value();
  ASSERT_TRUE(states.count("search/scale"));
  auto resumed = run(store, "killed", check_only(10), nullptr, states.at("search/scale"));
  ASSERT_TRUE(resumed.ok()) << resumed.error().message;
  EXPECT_EQ(resumed->evaluations, 10);
  const auto after = evaluated(store, "killed");
  ASSERT_EQ(after.size(), 10u) << "no seed re-inserted, no evaluation repeated";
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin())) << "what was stored is kept";
  EXPECT_EQ(after, evaluated(store, "whole")) << "the RNG state is restored: the same candidates as an unbroken run";
  // Resuming a finished task evaluates nothing more.
  auto again = run(store, "killed", check_only(10), nullptr, store.search_states("killed").value().at("search/scale"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(evaluated(store, "killed").size(), 10u);
  EXPECT_NE(again->stop_reason.find("before the resume"), std::string::npos);
}

// ---- against a fake LLM -------------------------------------------------------------------------

Scripted reply(int status, std::string body) { return Scripted{status, std::move(body), {}, false}; }

std::string kernel_file(const std::string& body, const std::string& about) {
  return "// @kforge entry: scale_llm\n// @kforge about: " + about +
         "\nextern \"C\" void scale_llm(const float* x, float* y, int N, float alpha) {\n" + body + "\n}\n";
}
const std::string kGoodBody = "  for (int i = 0; i < N; ++i) y[i] = alpha * x[i];";
// kGoodBody with a branch never taken (N > 0) whose constant differs: another kernel, in its code
// too, so the search's code-hash dedup evaluates each.
std::string good_variant(int v) {
  return kGoodBody + "\n  if (N == -1000 - " + std::to_string(v) + ") y[0] = 0;";
}

TEST_F(SearchTest, AnLlmSearchSurvivesEveryKindOfBadReplyAndEndsWithACorrectBest) {
  FakeLlmServer server;
  int variant = 0;
  // Each entry answers one HTTP request, in order; then correct kernels, each a little different.
  std::deque<std::function<Scripted(const json&)>> script = {
      [](const json&) { return reply(200, reply_body("I would vectorise it, but here is no code.")); },
      [](const json& r) { return reply(200, reply_body(answer(r, kernel_file(kGoodBody, "after prose")))); },
      [](const json& r) {
        return reply(200, reply_body(answer(r, kernel_file("  for (int i = 0; i < N; ++i) y[i] = x[i];", "wrong"))));
      },
      [](const json& r) {
        return reply(200, reply_body(answer(r, kernel_file("  y[0] = undeclared_thing;", "broken"))));
      },
      [](const json&) {
        return reply(200, reply_body("<<<<<<< SEARCH\nno such line\n=======\nx\n>>>>>>> REPLACE\n"
                                        "```cpp\nnot a kernel either\n```"));
      },
      [](const json& r) {
        return reply(200, reply_body(answer(r, kernel_file(good_variant(0), "after a bad diff"))));
      },
      [](const json&) { return Scripted{429, R"({"error":{"message":"slow down"}})", {{"Retry-After", "1"}}, false}; },
      [](const json& r) { return reply(200, reply_body(answer(r, kernel_file(good_variant(1), "after 429")))); },
      [](const json&) { return reply(500, R"({"error":{"message":"overloaded"}})"); },
      [](const json& r) { return reply(200, reply_body(answer(r, kernel_file(good_variant(2), "after 500")))); },
      [](const json&) { return Scripted{200, "", {}, true}; },  // slower than the timeout
      [](const json& r) {
        return reply(200, reply_body(answer(r, kernel_file(good_variant(3), "after a timeout"))));
      },
      [](const json&) { return reply(200, R"X({"choices": [{"message": {"content": "trunc)X"); },
  };
  std::mutex script_mutex;
  server.set_fallback([&](const json& request) {
    std::lock_guard lock(script_mutex);
    if (!script.empty()) {
      auto next = script.front();
      script.pop_front();
      return next(request);
    }
    return reply(200, reply_body(answer(request, kernel_file(good_variant(10 + variant++),
                                                                "fallback"))));
  });

  LlmConfig config;
  LlmEndpoint endpoint;
  endpoint.name = "fake", endpoint.model = "fake-model", endpoint.base_url = server.url();
  endpoint.timeout_s = 1, endpoint.max_tokens = 1000;
  endpoint.usd_per_million_input = 1, endpoint.usd_per_million_output = 2;
  config.endpoints.push_back(endpoint);
  config.max_retries = 2, config.backoff_initial_s = 0.01, config.backoff_max_s = 2;
  auto store = KernelStore::open(dir_ + "/k.db").value();
  std::vector<LlmAttempt> attempts;
  std::mutex attempts_mutex;
  LlmClientOptions client_options;
  client_options.budget = std::make_shared<LlmBudget>();
  client_options.on_call = [&](const LlmAttempt& a) {
    std::lock_guard lock(attempts_mutex);
    attempts.push_back(a);
  };
  auto llm = LlmClient::create(config, client_options).value();

  SearchOptions options = check_only(10);
  options.islands = 1;
  options.concurrency = 1;  // the script is answered in order
  auto outcome = run(store, "llm", options, llm.get());
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->evaluations, 10);
  EXPECT_FALSE(outcome->best_key.empty());

  // What each misbehaviour became.
  std::map<std::string, std::string> status_of;  // about -> status
  for (const auto& key : evaluated(store, "llm")) {
    auto kernel = store.find_kernel(key).value();
    const auto history = store.evaluations(key).value();
    status_of[parse_candidate(kernel->source, "k").value().about] = history.back().status;
    if (kernel->operator_name != "seed") {
      EXPECT_EQ(kernel->operator_name.rfind("llm_", 0), 0u) << kernel->operator_name;
    }
  }
  EXPECT_EQ(status_of["after prose"], "ok") << "a reply with no code is sent back once";
  EXPECT_EQ(status_of["wrong"], "incorrect");
  EXPECT_EQ(status_of["broken"], "compile_error");
  EXPECT_EQ(status_of["after a bad diff"], "ok") << "a diff that does not apply is sent back once";
  EXPECT_EQ(status_of["after 429"], "ok");
  EXPECT_EQ(status_of["after 500"], "ok");
  EXPECT_EQ(status_of["after a timeout"], "ok");
  EXPECT_EQ(outcome->llm_failures, 1) << "the truncated reply (not retried) is the one request that failed";

  // Every attempt was recorded, the failures with their status.
  std::map<std::string, int> by_status;
  for (const auto& a : attempts) by_status[a.status]++;
  EXPECT_EQ(by_status["http_error"], 2);
  EXPECT_EQ(by_status["timeout"], 1);
  EXPECT_EQ(by_status["bad_reply"], 1);
  EXPECT_GE(by_status["ok"], 9);

  // The failures were fed back: the send-backs quote what was wrong, and later prompts carry the
  // compiler's error and the mismatch.
  bool sent_back = false, compile_error_fed = false, mismatch_fed = false;
  for (const auto& seen : server.seen()) {
    const auto& messages = seen.body["messages"];
    const std::string last = messages.back()["content"];
    sent_back |= messages.size() == 4 && last.find("Your reply could not be used") != std::string::npos;
    const std::string user = messages[1]["content"];
    compile_error_fed |= user.find("undeclared_thing") != std::string::npos && user.find("compile_error") != std::string::npos;
    mismatch_fed |= user.find("incorrect") != std::string::npos;
  }
  EXPECT_TRUE(sent_back);
  EXPECT_TRUE(compile_error_fed);
  EXPECT_TRUE(mismatch_fed);
}

TEST_F(SearchTest, AnLlmThatOnlyRepeatsItselfEndsTheSearch) {
  // Every reply is one kernel, written anew each time (another loop variable): the first is
  // evaluated, the rest are duplicates by their code, and the search stops instead of asking forever.
  FakeLlmServer server;
  int calls = 0;
  server.set_fallback([&](const json& request) {
    const std::string i = "i" + std::to_string(++calls);
    const std::string body = "  for (int " + i + " = 0; " + i + " < N; ++" + i + ") y[" + i + "] = alpha * x[" + i + "];";
    return reply(200, reply_body(answer(request, kernel_file(body, "stuck"))));
  });
  LlmConfig config;
  LlmEndpoint endpoint;
  endpoint.name = "fake", endpoint.model = "fake-model", endpoint.base_url = server.url();
  endpoint.timeout_s = 5, endpoint.max_tokens = 1000;
  config.endpoints.push_back(endpoint);
  auto llm = LlmClient::create(config, {}).value();
  auto store = KernelStore::open(dir_ + "/k.db").value();
  SearchOptions options = check_only(100);
  options.islands = 1;
  options.concurrency = 1;
  auto outcome = run(store, "stuck", options, llm.get());
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->evaluations, 3) << "the two seeds and the LLM's one kernel";
  EXPECT_EQ(outcome->duplicates, kMaxDuplicatesInRowLlm);
  EXPECT_NE(outcome->stop_reason.find("already evaluated"), std::string::npos) << outcome->stop_reason;
}

// ---- the pipeline: LLM calls, compiles and evaluations overlapping ----------------------------

std::unique_ptr<LlmClient> fake_client(const FakeLlmServer& server, double timeout_s, int max_retries) {
  LlmConfig config;
  LlmEndpoint endpoint;
  endpoint.name = "fake", endpoint.model = "fake-model", endpoint.base_url = server.url();
  endpoint.timeout_s = timeout_s, endpoint.max_tokens = 1000;
  config.endpoints.push_back(endpoint);
  config.max_retries = max_retries;
  return LlmClient::create(config, {}).value();
}

// Serves a new correct kernel on every call, none of them in the compile cache yet: each compile
// is a real one, long enough to overlap whatever runs beside it.
void serve_fresh_kernels(FakeLlmServer& server) {
  server.set_fallback([variant = 1000 * (getpid() % 20000)](const json& request) mutable {
    return reply(200, reply_body(answer(request, kernel_file(good_variant(++variant), "fresh"))));
  });
}

SearchReporter collecting(std::vector<SearchSpan>& spans, std::vector<std::string>* lines = nullptr) {
  SearchReporter reporter;
  reporter.span = [&spans](const SearchSpan& span) { spans.push_back(span); };
  if (lines) reporter.log = [lines](const std::string& line) { lines->push_back(line); };
  return reporter;
}

TEST_F(SearchTest, WithAnLlmEachProposalIsCompiledOnItsRequestsThreadBeforeItsEvaluation) {
  FakeLlmServer server;
  serve_fresh_kernels(server);
  auto llm = fake_client(server, 30, 2);
  for (const bool on_request_threads : {true, false}) {
    SCOPED_TRACE(on_request_threads ? "compiled on the request threads" : "compiled on the search thread");
    auto store = KernelStore::open(dir_ + (on_request_threads ? "/a.db" : "/b.db")).value();
    SearchOptions options = check_only(8);
    options.concurrency = 3;
    options.compile_on_request_threads = on_request_threads;
    std::vector<SearchSpan> spans;
    auto outcome = run(store, "pipe", options, llm.get(), std::nullopt, "search/scale", collecting(spans));
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    EXPECT_EQ(outcome->evaluations, 8);

    double compile_seconds = 0, hidden_seconds = 0;
    int llm_evaluations = 0;
    for (const auto& s : spans) {
      if (s.what == "compile") {
        compile_seconds += s.end_s - s.start_s;
        if (s.off_search_thread) hidden_seconds += s.end_s - s.start_s;
        if (s.origin.rfind("cpu_", 0) == 0) {
          EXPECT_FALSE(s.off_search_thread) << "a seed is compiled here: " << s.origin;
        }
      }
      if (s.what != "evaluate" || s.origin.rfind("llm_", 0) != 0) continue;
      ++llm_evaluations;
      auto compile = std::find_if(spans.begin(), spans.end(),
                                  [&](const SearchSpan& c) { return c.what == "compile" && c.origin == s.origin; });
      ASSERT_NE(compile, spans.end()) << s.origin << " was evaluated without a compile to dedup it";
      EXPECT_EQ(compile->off_search_thread, on_request_threads) << s.origin;
      EXPECT_LE(compile->end_s, s.start_s) << s.origin << " was evaluated before its compile ended";
    }
    EXPECT_EQ(llm_evaluations, 6) << "the two seeds, then six kernels of the LLM";
    EXPECT_NEAR(outcome->compile_seconds, compile_seconds, 1e-9);
    EXPECT_NEAR(outcome->compile_seconds_hidden, hidden_seconds, 1e-9);
    if (on_request_threads) {
      EXPECT_GT(outcome->compile_seconds_hidden, 0);
      EXPECT_LT(outcome->compile_seconds_hidden, outcome->compile_seconds) << "the seeds' compiles are not hidden";
    } else {
      EXPECT_EQ(outcome->compile_seconds_hidden, 0);
    }
  }
}

TEST_F(SearchTest, OnTheCpuNoCompileRunsWhileAKernelIsEvaluated) {
  // The device is the host: a compile beside an evaluation would take the timed kernel's cores.
  // Four requests answer at once, so without the gate their compiles would run during the first
  // evaluations.
  FakeLlmServer server;
  serve_fresh_kernels(server);
  auto llm = fake_client(server, 30, 2);
  auto store = KernelStore::open(dir_ + "/k.db").value();
  SearchOptions options = check_only(10);
  options.concurrency = 4;
  std::vector<SearchSpan> spans;
  auto outcome = run(store, "gate", options, llm.get(), std::nullopt, "search/scale", collecting(spans));
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->evaluations, 10);
  int hidden = 0, evaluations = 0;
  for (const auto& c : spans) {
    if (c.what != "compile") continue;
    hidden += c.off_search_thread;
    for (const auto& e : spans) {
      if (e.what == "compile") continue;
      EXPECT_TRUE(c.end_s <= e.start_s || e.end_s <= c.start_s)
          << "compile of " << c.origin << " [" << c.start_s << ", " << c.end_s << "] overlaps " << e.what << " of "
          << e.origin << " [" << e.start_s << ", " << e.end_s << "]";
    }
  }
  for (const auto& e : spans) evaluations += e.what == "evaluate";
  EXPECT_GE(hidden, 8) << "the LLM's kernels were compiled on the request threads";
  EXPECT_EQ(evaluations, 10);
}

TEST_F(SearchTest, AHangingRequestHoldsUpNoEvaluationOfWhatTheOthersProposed) {
  // One request never answers (the client gives up after its timeout). Meanwhile the other two
  // requests' kernels, and the one asked for next, are evaluated: only the budget waits for it.
  FakeLlmServer server;
  server.push(Scripted{200, "", {}, true});
  serve_fresh_kernels(server);
  auto llm = fake_client(server, 3, 0);
  auto store = KernelStore::open(dir_ + "/k.db").value();
  SearchOptions options = check_only(6);
  options.concurrency = 3;
  std::vector<SearchSpan> spans;
  std::vector<std::string> lines;
  auto outcome = run(store, "hang", options, llm.get(), std::nullopt, "search/scale", collecting(spans, &lines));
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->evaluations, 6);
  EXPECT_EQ(outcome->llm_failures, 1);
  const auto failure =
      std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find(": no kernel") != std::string::npos; });
  ASSERT_NE(failure, lines.end());
  const auto llm_evaluations = std::count_if(lines.begin(), failure, [](const std::string& l) {
    return l.find(" llm_") != std::string::npos && l.find(" ok") != std::string::npos;
  });
  EXPECT_EQ(llm_evaluations, 3) << "evaluated while the hung request waited";
}

}  // namespace
}  // namespace kforge
