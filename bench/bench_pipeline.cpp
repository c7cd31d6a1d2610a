// The search's pipeline (issue 7): what compiling LLM proposals on their requests' threads saves.
//
//   build/bench/bench_pipeline [--latency 1.0] [--evals 14] [--concurrency 4] [--rounds 2] [--timed]
//
// An LLM search of tests/data/tasks/search/scale on the cpu backend, against a fake OpenAI server
// on loopback that answers every request after a fixed latency with a correct kernel never seen
// before (so every compile is a real one, in a compile cache of the bench's own), run twice a
// round: with SearchOptions::compile_on_request_threads (the default) and with every compile on
// the search thread, as before it existed. On the cpu the device gate keeps compiles and
// evaluations apart, so the first gains only what overlaps compiles with the endpoint's latency
// and with each other. Evaluations are correctness-only unless --timed. Printed: each search's
// wall time and compile seconds (hidden: off the search thread), and the ratio of the wall times,
// summed over the rounds, the modes alternating first.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "agent/search.hpp"
#include "tests/fake_llm_server.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

template <class T>
T die_unless(Result<T> r, const std::string& what) {
  if (!r) {
    fmt::print(stderr, "bench_pipeline: {}: {}\n", what, r.error().message);
    std::exit(1);
  }
  return std::move(*r);
}

// A kernel of search/scale as a model writes one for a CPU: AVX and OpenMP, so that it compiles in
// about the time a real proposal does; `v` makes its code (a branch never taken) differ.
std::string fresh_kernel(int v) {
  return fmt::format(
      "// @kforge entry: scale_llm\n// @kforge about: variant {0}\n"
      "#include <algorithm>\n#include <cmath>\n#ifdef __AVX__\n#include <immintrin.h>\n#endif\n"
      "extern \"C\" void scale_llm(const float* x, float* y, int N, float alpha) {{\n"
      "  int i = 0;\n"
      "#ifdef __AVX__\n"
      "  const __m256 a = _mm256_set1_ps(alpha);\n"
      "#pragma omp parallel for\n"
      "  for (int j = 0; j < N / 8; ++j) _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(a, _mm256_loadu_ps(x + 8 * j)));\n"
      "  i = N / 8 * 8;\n"
      "#endif\n"
      "  for (; i < N; ++i) y[i] = alpha * x[i];\n"
      "  if (N == -1000 - {0}) y[0] = 0;\n}}\n",
      v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "worker") return worker_main();  // its own evaluation worker
  double latency_s = 1.0;
  int evaluations = 14, concurrency = 4, rounds = 2;
  bool timed = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--latency" && has_value) latency_s = std::atof(argv[++i]);
    else if (arg == "--evals" && has_value) evaluations = std::atoi(argv[++i]);
    else if (arg == "--concurrency" && has_value) concurrency = std::atoi(argv[++i]);
    else if (arg == "--rounds" && has_value) rounds = std::atoi(argv[++i]);
    else if (arg == "--timed") timed = true;
    else {
      fmt::print(stderr, "usage: bench_pipeline [--latency S] [--evals N] [--concurrency C] [--rounds R] [--timed]\n");
      return 2;
    }
  }

  const fs::path dir = fs::temp_directory_path() / fmt::format("kforge-bench-pipeline-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto compiler = make_host_backend({.compiler = "", .cache_dir = (dir / "cache").string()});
  const Task task = die_unless(find_task(std::string(KFORGE_SOURCE_DIR) + "/tests/data/tasks", "search/scale"), "task");
  const Evaluator evaluator = die_unless(Evaluator::create(task, *compiler), "evaluator");

  FakeLlmServer server;
  std::atomic<int> variant{0};
  server.set_fallback([&](const json& request) {
    return Scripted{200, reply_body(answer(request, fresh_kernel(++variant))), {}, false, latency_s};
  });
  LlmConfig config;
  LlmEndpoint endpoint;
  endpoint.name = "fake", endpoint.model = "fake-model", endpoint.base_url = server.url();
  endpoint.timeout_s = 60 + latency_s, endpoint.max_tokens = 1000;
  config.endpoints.push_back(endpoint);
  auto llm = die_unless(LlmClient::create(config), "LLM client");

  fmt::print("bench_pipeline: {} on the cpu ({}), LLM latency {:.2f} s, concurrency {}, {} evaluations ({})\n",
             task.id(), host_cpu_name(), latency_s, concurrency, evaluations,
             timed ? "timed" : "correctness only");
  const PromptContext prompts{std::string(KFORGE_SOURCE_DIR) + "/prompts", "cpu", host_cpu_name(), "x86-64-avx2", "", ""};
  double seconds[2] = {0, 0};  // [compiled on the search thread, on the request threads]
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < 2; ++i) {
      const bool on_request_threads = (i + round) % 2 == 0;
      SearchOptions options;
      options.evaluations = evaluations;
      options.concurrency = concurrency;
      options.compile_on_request_threads = on_request_threads;
      options.eval.time_bench_shapes = timed;
      auto store = die_unless(KernelStore::open((dir / fmt::format("r{}-{}.db", round, i)).string()), "kernel library");
      Search search(options, store, "bench", "cpu:bench", prompts, llm.get(), {});
      const double start = steady_seconds();
      const TaskOutcome outcome = die_unless(search.run(evaluator, std::nullopt, start + 600), "search");
      const double wall = steady_seconds() - start;
      if (outcome.evaluations != evaluations || outcome.correct != evaluations) {
        fmt::print(stderr, "bench_pipeline: {} evaluations, {} correct, stopped: {}\n", outcome.evaluations,
                   outcome.correct, outcome.stop_reason);
        return 1;
      }
      seconds[on_request_threads] += wall;
      fmt::print("round {}  compiles on the {:<15}  {:6.2f} s wall, compiles {:5.2f} s ({:.2f} s hidden)\n", round + 1,
                 on_request_threads ? "request threads" : "search thread", wall, outcome.compile_seconds,
                 outcome.compile_seconds_hidden);
    }
  }
  fmt::print("wall time, compiles on the search thread / on the request threads: {:.2f}x\n", seconds[0] / seconds[1]);
  fs::remove_all(dir);
  return 0;
}
