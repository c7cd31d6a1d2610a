// Decode tokens/s of a ~110M-parameter Llama (llama2.c's stories110M shape: dim 768, 12 layers,
// 12 heads, 12 kv heads, hidden 2048, vocab 32000) on the baseline kernels and on a tuned library,
// in the same run, and their ratio; then the time per op of each.
//
//   build/bench/bench_infer [--db kforge.db] [--steps 32] [--repeat 3] [--model FILE] [--q8]
//
// Without --model the synthetic checkpoint is written once to build/bench-infer-110m.bin (440 MB,
// deterministic) and reused. Without --db only the baseline runs. Each library gets a warm-up
// (prompt <s>, 4 steps: compiles and resolves), then timed runs: <s>, then --steps greedy steps
// (llm/lmhead_argmax). The libraries take turns, --repeat times (default 3), and each keeps its
// fastest run: on a shared machine the load of the moment moves a single run by tens of percent.
// --q8: the projections in Q8_0 (llm/gemv_q8_0).
//
// Kernels run with OpenMP as compiled (-fopenmp). On a busy machine, run with
// OMP_WAIT_POLICY=passive (or OMP_NUM_THREADS=1): libgomp's workers spin between parallel regions
// by default, and with ~100 kernel calls per token that spinning takes the cores the other calls
// need (measured here, 2 shared cores: the tuned library went from 0.54x to 1.38x the baseline).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "inference/kernel_library.hpp"
#include "inference/llama.hpp"

using namespace kforge;
namespace fs = std::filesystem;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "bench_infer: %s\n", message.c_str());
  return 1;
}

struct Timed {
  double tokens_per_s = 0;
  std::vector<LlamaDecoder::OpTime> ops;
  std::vector<std::string> kernels;
};

Result<Timed> decode(const LlamaModel& model, KernelLibrary& library, int steps, bool warm_up) {
  for (int pass = warm_up ? 0 : 1; pass < 2; ++pass) {
    auto decoder = LlamaDecoder::create(model, library, {.profile = pass == 1});
    if (!decoder) return decoder.error();
    int token = 1;
    const int n = pass == 0 ? 4 : steps;
    auto first = decoder->forward_greedy(std::span(&token, 1));
    if (!first) return first.error();
    token = *first;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto next = decoder->forward_greedy(std::span(&token, 1));
      if (!next) return next.error();
      token = *next;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (pass == 1) return Timed{n / s, decoder->op_times(), decoder->explain()};
  }
  return make_error(ErrorKind::internal, "unreachable");
}

void print_ops(const char* name, const Timed& t) {
  double total = 0;
  for (const auto& op : t.ops) total += op.seconds;
  std::printf("%s: time per op (the <s> forward and the timed steps)\n", name);
  for (const auto& op : t.ops)
    std::printf("  %-18s %8lld calls %9.4f s %5.1f%%\n", op.op.c_str(), static_cast<long long>(op.calls), op.seconds,
                100 * op.seconds / total);
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, model_path;
  int steps = 32, repeat = 3;
  bool q8 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) db = argv[++i];
    else if (a == "--model" && i + 1 < argc) model_path = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--q8") q8 = true;
    else return fail("usage: bench_infer [--db kforge.db] [--steps 32] [--repeat 3] [--model FILE] [--q8]");
  }
  const LlamaConfig config{.dim = 768, .hidden_dim = 2048, .n_layers = 12, .n_heads = 12, .n_kv_heads = 12,
                           .vocab_size = 32000, .seq_len = 256};
  if (model_path.empty()) {
    model_path = std::string(KFORGE_BINARY_DIR) + "/bench-infer-110m.bin";
    std::error_code ec;
    if (fs::file_size(model_path, ec) != static_cast<std::uintmax_t>(config.file_bytes())) {
      std::printf("writing %s (%s)...\n", model_path.c_str(), config.describe().c_str());
      if (Status s = write_synthetic_llama(model_path, config, 1); !s) return fail(s.error().message);
    }
  }
  auto model = LlamaModel::load(model_path, q8 ? LlamaWeightFormat::q8_0 : LlamaWeightFormat::f32);
  if (!model) return fail(model.error().message);
  if (model->config().seq_len < steps + 6) return fail("--steps: longer than the model's context");
  std::printf("model %s: %s, %.1fM parameters, %s weights\n", model_path.c_str(),
              model->config().describe().c_str(), static_cast<double>(model->config().parameters()) / 1e6,
              to_string(model->format()));

  KernelLibraryOptions options;
  options.tasks_dir = std::string(KFORGE_SOURCE_DIR) + "/tasks";
  auto baseline = KernelLibrary::open_baseline(options);
  if (!baseline) return fail(baseline.error().message);
  std::optional<KernelLibrary> library;
  if (!db.empty()) {
    auto opened = KernelLibrary::open(db, options);
    if (!opened) return fail(opened.error().message);
    library = std::move(*opened);
  }
  std::optional<Timed> base, tuned;
  auto keep_fastest = [](std::optional<Timed>& best, Timed run) {
    if (!best || run.tokens_per_s > best->tokens_per_s) best = std::move(run);
  };
  std::vector<double> base_runs, tuned_runs;
  for (int r = 0; r < repeat; ++r) {
    auto b = decode(*model, *baseline, steps, r == 0);
    if (!b) return fail(b.error().message);
    base_runs.push_back(b->tokens_per_s);
    keep_fastest(base, std::move(*b));
    if (!library) continue;
    auto t = decode(*model, *library, steps, r == 0);
    if (!t) return fail(t.error().message);
    tuned_runs.push_back(t->tokens_per_s);
    keep_fastest(tuned, std::move(*t));
  }
  auto runs = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += (out.empty() ? "" : ", ") + std::to_string(x).substr(0, 5);
    return out;
  };
  std::printf("baseline kernels: %.2f tokens/s decode (%d steps; runs: %s)\n", base->tokens_per_s, steps,
              runs(base_runs).c_str());
  print_ops("baseline", *base);
  if (!library) return 0;
  std::printf("tuned library %s: %.2f tokens/s decode (%d steps; runs: %s)\n", db.c_str(), tuned->tokens_per_s, steps,
              runs(tuned_runs).c_str());
  print_ops("tuned", *tuned);
  int matched = 0;
  for (const auto& line : tuned->kernels)
    if (line.find(": baseline: ") == std::string::npos) ++matched, std::printf("  tuned: %s\n", line.c_str());
  std::printf("%d of %zu resolved problems ran a tuned kernel\n", matched, tuned->kernels.size());
  std::printf("decode speedup, tuned / baseline (fastest runs): %.2fx\n", tuned->tokens_per_s / base->tokens_per_s);
  return 0;
}
