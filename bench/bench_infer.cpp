// Decode and prefill of a ~110M-parameter Llama (llama2.c's stories110M shape: dim 768, 12 layers,
// 12 heads, 12 kv heads, hidden 2048, vocab 32000) against physics and against the baseline
// kernels, with f32 weights and with Q8_0 weights, in one run:
//   - the memory roofline: the bytes a decode step must read (every projection and the
//     classifier, in the weights' format, plus the KV cache) over the read bandwidth of this
//     machine; decode tokens/s as a % of it. Each decode run is set against its own read: right
//     after it, the evaluator's probe (compiled like a candidate, every core) reads a buffer of a
//     step's bytes once per step, in one timed go. This VM's bandwidth moves by a third within
//     minutes, so a run against the best read of the bench says more about the neighbours' load
//     than about the decoder; the % printed is the median of the runs' own shares;
//   - prefill: tokens/s of one 64-token prompt chunk, and its ratio to decode;
//   - the decoder's own overhead: kernel calls per token, and the time per token spent outside
//     the kernels (profiled pass: wall time less the kernels' time);
//   - with --db, the tuned library beside the baseline kernels (each op's naive seed), and their ratio;
//   - a hand-written C decoder (bench/c_decoder.c: llama2.c's style, scalar loops with OpenMP over
//     the rows, -Ofast -march=native -fopenmp) on the same checkpoint and steps, timed the same way
//     and in the same rounds: kforge's tokens/s as a ratio to it, and whether the greedy tokens are
//     the same. Beside the Q8_0 libraries it runs as its int8 sibling (c_decoder --int8, llama2.c's
//     runq.c style: weights and activations int8 in groups of 32, an f32 scale each).
//
//   build/bench/bench_infer [--db kforge.db] [--steps 32] [--repeat 3] [--model FILE] [--formats f32,q8_0]
//
// Without --model the synthetic checkpoint is written once to build/bench-infer-110m.bin (440 MB,
// deterministic) and reused. Each library gets a warm-up (compiles and resolves), then timed runs:
// <s>, then --steps greedy steps; the libraries take turns, then the C decoder, --repeat times, and
// each keeps its fastest run: on a shared machine the load of the moment moves a single run by tens
// of percent.
//
// Kernels run with OpenMP as compiled (-fopenmp). On a busy machine, run with
// OMP_WAIT_POLICY=passive: libgomp's workers spin between parallel regions by default, and with
// ~100 kernel calls per token that spinning takes the cores the other calls need.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "evaluator/internal.hpp"  // the physics probe: this machine's read bandwidth
#include "inference/kernel_library.hpp"
#include "inference/llama.hpp"
#include "inference/model_file.hpp"  // q8_0_bytes

using namespace kforge;
namespace fs = std::filesystem;

namespace {

constexpr int kChunk = 64;  // the prompt chunk prefill is measured on

int fail(const std::string& message) {
  std::fprintf(stderr, "bench_infer: %s\n", message.c_str());
  return 1;
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Timed {
  double decode_tokens_per_s = 0, prefill_tokens_per_s = 0;
  double calls_per_token = 0, kernel_s_per_token = 0, wall_s_per_token = 0;  // the profiled pass
  std::vector<LlamaDecoder::OpTime> ops;
  std::vector<std::string> kernels;
  std::vector<int> tokens;  // the greedy tokens of the timed decode: after <s>, then one per step
};

// `steps` greedy decode steps after <s>: tokens/s (the <s> step is not timed, as in the C
// decoder). With `tokens`, the greedy tokens go there.
Result<double> decode_steps(LlamaDecoder& decoder, int steps, std::vector<int>* tokens = nullptr) {
  int token = 1;
  auto first = decoder.forward_greedy(std::span(&token, 1));
  if (!first) return first.error();
  token = *first;
  if (tokens) tokens->assign(1, token);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    auto next = decoder.forward_greedy(std::span(&token, 1));
    if (!next) return next.error();
    token = *next;
    if (tokens) tokens->push_back(token);
  }
  return steps / since(start);
}

// One run: decode, then a profiled decode (calls and kernel time per token), then a 64-token prompt.
Result<Timed> run(const LlamaModel& model, KernelLibrary& library, int steps) {
  Timed t;
  {
    auto decoder = LlamaDecoder::create(model, library);
    if (!decoder) return decoder.error();
    auto tokens_per_s = decode_steps(*decoder, steps, &t.tokens);
    if (!tokens_per_s) return tokens_per_s.error();
    t.decode_tokens_per_s = *tokens_per_s;
  }
  {
    auto decoder = LlamaDecoder::create(model, library, {.profile = true});
    if (!decoder) return decoder.error();
    auto tokens_per_s = decode_steps(*decoder, steps);
    if (!tokens_per_s) return tokens_per_s.error();
    t.ops = decoder->op_times();
    t.kernels = decoder->explain();
    const double tokens = steps + 1;  // <s> included in the counts
    double calls = 0, seconds = 0;
    for (const auto& op : t.ops) calls += static_cast<double>(op.calls), seconds += op.seconds;
    t.calls_per_token = calls / tokens;
    t.kernel_s_per_token = seconds / tokens;
    t.wall_s_per_token = 1 / *tokens_per_s;
  }
  auto decoder = LlamaDecoder::create(model, library, {.max_chunk = kChunk});
  if (!decoder) return decoder.error();
  std::vector<int> prompt(kChunk);
  for (int i = 0; i < kChunk; ++i) prompt[static_cast<std::size_t>(i)] = 1 + (i * 7919) % (model.config().vocab_size - 1);
  const auto start = std::chrono::steady_clock::now();
  if (auto logits = decoder->forward(prompt); !logits) return logits.error();
  t.prefill_tokens_per_s = kChunk / since(start);
  return t;
}

// The hand-written C decoder's run: its tokens/s and greedy tokens, as it prints them.
struct CRun {
  double decode_tokens_per_s = 0;
  std::vector<int> tokens;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// One run of build/bench/c_decoder (with --int8, its int8 mode): <s>, then `steps` timed greedy
// steps on the checkpoint.
Result<CRun> run_c_decoder(const std::string& model_path, int steps, bool int8) {
  const std::string command =
      shell_quote(KFORGE_C_DECODER) + (int8 ? " --int8 " : " ") + shell_quote(model_path) + " " + std::to_string(steps);
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return make_error(ErrorKind::io, "cannot run {}: {}", KFORGE_C_DECODER, std::strerror(errno));
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = pclose(pipe);
  CRun r;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key == "tokens:")
      for (int t; words >> t;) r.tokens.push_back(t);
    else if (key == "decode:")
      std::sscanf(line.c_str(), "decode: %*d steps in %*f s, %lf tokens/s", &r.decode_tokens_per_s);
  }
  if (status != 0 || r.tokens.size() != static_cast<std::size_t>(steps) + 1 || !(r.decode_tokens_per_s > 0))
    return make_error(ErrorKind::io, "{} failed (wait status {}); it printed: {}", command, status, out);
  return r;
}

// Where kforge's greedy tokens part from the C decoder's, or that they do not.
std::string compare_tokens(const std::vector<int>& kforge, const std::vector<int>& c) {
  for (std::size_t i = 0; i < std::max(kforge.size(), c.size()); ++i)
    if (i >= kforge.size() || i >= c.size() || kforge[i] != c[i])
      return fmt::format("DIFFER from token {} on (kforge {}, C decoder {})", i,
                         i < kforge.size() ? std::to_string(kforge[i]) : "none",
                         i < c.size() ? std::to_string(c[i]) : "none");
  return fmt::format("identical, all {}", c.size());
}

// The bytes one decode step at position `pos` reads: every projection and the classifier at
// `per_weight` bytes a weight, the two norms' weights, one embedding row, and the KV cache up to pos.
double bytes_per_token(const LlamaConfig& c, double per_weight, int pos) {
  const double d = c.dim, kv = c.kv_dim(), h = c.hidden_dim, l = c.n_layers;
  const double projections = l * (d * (d + 2 * kv) + d * d + 3 * d * h) + c.vocab_size * d;
  const double kv_cache = 2 * l * kv * 4 * (pos + 1);
  return projections * per_weight + (2 * l + 1) * d * 4 + d * 4 + kv_cache;
}

void print_ops(const Timed& t) {
  double total = 0;
  for (const auto& op : t.ops) total += op.seconds;
  for (const auto& op : t.ops)
    std::printf("    %-18s %8lld calls %9.4f s %5.1f%%\n", op.op.c_str(), static_cast<long long>(op.calls), op.seconds,
                100 * op.seconds / total);
}

std::string list(const std::vector<double>& v, const char* format = "%.2f") {
  std::string out;
  char buffer[32];
  for (double x : v) {
    std::snprintf(buffer, sizeof buffer, format, x);
    out += (out.empty() ? "" : ", ") + std::string(buffer);
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// A decoder's timed runs: tokens/s, and each run's share of the roofline read right after it.
struct Runs {
  std::vector<double> tokens_per_s, shares;
  // "% of the memory roofline (steps; runs; shares)" after the fastest run's tokens/s.
  void print(double fastest, int steps) const {
    std::vector<double> percent;
    for (double share : shares) percent.push_back(100 * share);
    std::printf("  decode  %7.2f tokens/s  %5.1f%% of the memory roofline  (%d steps; runs: %s; their shares: %s)\n",
                fastest, 100 * median(shares), steps, list(tokens_per_s).c_str(), list(percent, "%.0f%%").c_str());
  }
};

struct Library {
  std::string name;
  KernelLibrary* library;
  std::optional<Timed> best;
  Runs runs;
};

// The C decoder's fastest run and its runs' shares of their rooflines (`bytes` per token), kforge's
// libraries as a ratio to it, and whether their greedy tokens are its tokens.
void print_c_decoder(const CRun& c, bool int8, const Runs& runs, const std::vector<Library>& libraries,
                     double bytes, int steps) {
  std::printf(
      "hand-written C decoder (bench/c_decoder.c%s: scalar loops, OpenMP over rows; -Ofast -march=native "
      "-fopenmp)%s:\n",
      int8 ? " --int8" : "", int8 ? "; int8 weights and activations, an f32 scale per 32" : "");
  if (int8) std::printf("  its memory roofline: %.1f MB read per token (36 bytes per 32 weights)\n", bytes / 1e6);
  runs.print(c.decode_tokens_per_s, steps);
  for (const auto& lib : libraries) {
    std::vector<double> rounds;  // the library's run over the C decoder's, round by round
    for (size_t r = 0; r < lib.runs.tokens_per_s.size() && r < runs.tokens_per_s.size(); ++r)
      rounds.push_back(lib.runs.tokens_per_s[r] / runs.tokens_per_s[r]);
    std::printf("%s / C decoder: decode %.2fx (fastest runs), %.2fx (the median round; rounds: %s); greedy tokens %s\n",
                lib.name.c_str(), lib.best->decode_tokens_per_s / c.decode_tokens_per_s, median(rounds),
                list(rounds).c_str(), compare_tokens(lib.best->tokens, c.tokens).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, model_path, formats = "f32,q8_0";
  int steps = 32, repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) db = argv[++i];
    else if (a == "--model" && i + 1 < argc) model_path = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--formats" && i + 1 < argc) formats = argv[++i];
    else return fail("usage: bench_infer [--db kforge.db] [--steps 32] [--repeat 3] [--model FILE] [--formats f32,q8_0]");
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

  // This machine's read bandwidth: the evaluator's probe (compiled like a candidate), called after
  // each run on a buffer the size of what a decode step reads, once per step, on every core.
  auto host = make_host_backend();
  auto probe = compile_probe(*host);
  if (!probe) return fail(probe.error().message);
  void* probe_library = dlopen(probe->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  auto probe_read = probe_library ? reinterpret_cast<double (*)(long, int, long)>(
                                        dlsym(probe_library, "kforge_probe_read_passes"))
                                  : nullptr;
  if (!probe_read) return fail("the bandwidth probe " + probe->path + " does not load: " + dlerror());
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  KernelLibraryOptions options;
  options.tasks_dir = std::string(KFORGE_SOURCE_DIR) + "/tasks";
  auto baseline = KernelLibrary::open_baseline(options);
  if (!baseline) return fail(baseline.error().message);
  std::optional<KernelLibrary> tuned;
  if (!db.empty()) {
    auto opened = KernelLibrary::open(db, options);
    if (!opened) return fail(opened.error().message);
    tuned = std::move(*opened);
  }

  std::vector<double> decode_by_format;
  std::stringstream names(formats);
  for (std::string name; std::getline(names, name, ',');) {
    if (name != "f32" && name != "q8_0") return fail("--formats: f32 and q8_0, not '" + name + "'");
    const LlamaWeightFormat format = name == "q8_0" ? LlamaWeightFormat::q8_0 : LlamaWeightFormat::f32;
    auto model = LlamaModel::load(model_path, format);
    if (!model) return fail(model.error().message);
    if (model->config().seq_len < std::max(steps + 2, kChunk)) return fail("--steps: longer than the model's context");
    const LlamaConfig& c = model->config();
    std::printf("\n== %s weights: %s, %.1fM parameters\n", name.c_str(), c.describe().c_str(),
                static_cast<double>(c.parameters()) / 1e6);

    std::vector<Library> libraries = {{"baseline kernels", &*baseline, {}, {}}};
    if (tuned) libraries.push_back({"tuned library " + db, &*tuned, {}, {}});
    // Q8_0: 34 bytes per 32 weights (an f16 scale); the C decoder's int8: 36 (an f32 scale).
    const bool q8 = format == LlamaWeightFormat::q8_0;
    const double bytes = bytes_per_token(c, q8 ? q8_0_bytes(1, 32) / 32.0 : 4, steps / 2);
    const double c_bytes = bytes_per_token(c, q8 ? (32 + 4) / 32.0 : 4, steps / 2);
    // The roofline of the run just done: the machine's rate reading a step's bytes `steps` times.
    std::vector<double> reads;
    auto share = [&](double tokens_per_s, double step_bytes) {
      const double rate = probe_read(static_cast<long>(step_bytes), threads, steps);
      reads.push_back(rate);
      return tokens_per_s * step_bytes / rate;
    };
    std::optional<CRun> c_best;
    Runs c_runs;
    for (int r = 0; r < repeat; ++r) {
      for (auto& lib : libraries) {
        if (r == 0)  // warm-up: compiles and resolves every kernel
          if (auto warm = run(*model, *lib.library, 2); !warm) return fail(warm.error().message);
        auto t = run(*model, *lib.library, steps);
        if (!t) return fail(t.error().message);
        lib.runs.tokens_per_s.push_back(t->decode_tokens_per_s);
        lib.runs.shares.push_back(share(t->decode_tokens_per_s, bytes));
        if (!lib.best || t->decode_tokens_per_s > lib.best->decode_tokens_per_s) lib.best = std::move(*t);
      }
      auto c_run = run_c_decoder(model_path, steps, q8);
      if (!c_run) return fail(c_run.error().message);
      c_runs.tokens_per_s.push_back(c_run->decode_tokens_per_s);
      c_runs.shares.push_back(share(c_run->decode_tokens_per_s, c_bytes));
      if (!c_best || c_run->decode_tokens_per_s > c_best->decode_tokens_per_s) c_best = std::move(*c_run);
    }
    std::vector<double> gb_per_s;
    for (double rate : reads) gb_per_s.push_back(rate / 1e9);
    std::printf("memory roofline: %.1f MB read per token; this machine read %s GB/s right after each run (median "
                "%.1f GB/s = %.1f tokens/s)\n",
                bytes / 1e6, list(gb_per_s, "%.1f").c_str(), median(reads) / 1e9, median(reads) / bytes);
    for (const auto& lib : libraries) {
      const Timed& t = *lib.best;
      std::printf("%s:\n", lib.name.c_str());
      lib.runs.print(t.decode_tokens_per_s, steps);
      std::printf("  prefill %7.2f tokens/s  (one %d-token chunk)  %.2fx decode\n", t.prefill_tokens_per_s, kChunk,
                  t.prefill_tokens_per_s / t.decode_tokens_per_s);
      std::printf("  per token: %.0f kernel calls, %.2f ms in kernels, %.3f ms outside them (profiled pass)\n",
                  t.calls_per_token, 1e3 * t.kernel_s_per_token,
                  1e3 * std::max(0.0, t.wall_s_per_token - t.kernel_s_per_token));
      std::printf("  time per op (the profiled pass):\n");
      print_ops(t);
    }
    if (tuned) {
      const Timed &b = *libraries[0].best, &t = *libraries[1].best;
      int matched = 0;
      for (const auto& line : t.kernels)
        if (line.find(": baseline: ") == std::string::npos) ++matched, std::printf("  tuned: %s\n", line.c_str());
      std::printf("%d of %zu resolved problems ran a tuned kernel\n", matched, t.kernels.size());
      std::printf("tuned / baseline (fastest runs): decode %.2fx, prefill %.2fx\n",
                  t.decode_tokens_per_s / b.decode_tokens_per_s, t.prefill_tokens_per_s / b.prefill_tokens_per_s);
    }
    print_c_decoder(*c_best, q8, c_runs, libraries, c_bytes, steps);
    decode_by_format.push_back(libraries.back().best->decode_tokens_per_s);
  }
  if (decode_by_format.size() == 2)
    std::printf("\nq8_0 / f32 decode tokens/s (%s): %.2fx\n", tuned ? "tuned library" : "baseline kernels",
                decode_by_format[1] / decode_by_format[0]);
  return 0;
}
