// kforge infer: greedy generation with a llama2.c checkpoint, every op a kernel of the library
// (inference/llama.hpp), on the cpu or a GPU (--backend); --compare runs the baseline kernels beside
// the tuned ones and checks their logits agree; --emit-tasks lists the problems to tune; `infer make-model` writes a synthetic model.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"
#include "inference/kernel_library.hpp"
#include "inference/llama.hpp"

namespace kforge::cli {
namespace {

namespace fs = std::filesystem;

struct InferArgs {
  std::string model, db_path, prompt, backend = "cpu", tokenizer, weights = "f32";
  int steps = 128, batch = 64;
  double tolerance = 1e-3;
  bool compare = false, emit_tasks = false, show_kernels = false;
  std::string tasks_out;
};

constexpr std::size_t kMaxShapesPerTask = 8;  // of a per-position op (attn_decode, kv_append)

// task.toml's text with its `bench = [ ... ]` array replaced by `shapes`, comments kept.
Result<std::string> with_bench(const std::string& toml, const std::vector<Bindings>& shapes) {
  static const std::regex key(R"((^|\n)bench\s*=\s*\[)");
  std::smatch m;
  if (!std::regex_search(toml, m, key)) return make_error(ErrorKind::invalid_input, "no bench = [ ... ] line");
  const std::size_t open = static_cast<std::size_t>(m.position(0) + m.length(0)) - 1;
  std::size_t close = open;
  for (int depth = 0; close < toml.size(); ++close) {
    depth += toml[close] == '[' ? 1 : toml[close] == ']' ? -1 : 0;
    if (depth == 0) break;
  }
  if (close == toml.size()) return make_error(ErrorKind::invalid_input, "bench = [ is never closed");
  std::vector<std::string> tables;
  for (const auto& dims : shapes) {
    std::vector<std::string> fields;
    for (const auto& [name, value] : dims) fields.push_back(fmt::format("{} = {}", name, value));
    tables.push_back(fmt::format("{{ {} }}", fmt::join(fields, ", ")));
  }
  return toml.substr(0, open) + "[ " + fmt::format("{}", fmt::join(tables, ", ")) + " ]" + toml.substr(close + 1);
}

// Writes OUT/<suite>/<name>/ for every op the model needs: a copy of the task whose bench shapes
// are the model's problems of that op (at most kMaxShapesPerTask, evenly spread, for the ops with
// a problem per position), so `kforge --tasks-dir OUT search` tunes what the decoder resolves.
Status write_model_tasks(const std::string& tasks_root, const std::vector<LlamaProblem>& problems,
                         const std::string& out, const std::string& model) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_empty(out, ec))
    return make_error(ErrorKind::invalid_input, "--tasks-out {}: exists and is not empty; give a new folder", out);
  std::map<std::string, std::vector<Bindings>> shapes;  // op -> its problems, in the model's order
  for (const auto& p : problems)
    if (auto& list = shapes[p.op]; std::find(list.begin(), list.end(), p.dims) == list.end()) list.push_back(p.dims);
  for (auto& [op, list] : shapes) {
    auto task = find_task(tasks_root, op);
    if (!task) return task.error();
    if (list.size() > kMaxShapesPerTask) {
      std::vector<Bindings> spread;
      for (std::size_t i = 0; i < kMaxShapesPerTask; ++i)
        spread.push_back(list[i * (list.size() - 1) / (kMaxShapesPerTask - 1)]);
      list = std::move(spread);
    }
    const fs::path dir = fs::path(out) / task->suite / task->name;
    fs::create_directories(dir.parent_path(), ec);
    fs::copy(task->dir, dir, fs::copy_options::recursive, ec);
    if (ec) return make_error(ErrorKind::io, "copying {} to {}: {}", task->dir, dir.string(), ec.message());
    auto text = read_file((dir / "task.toml").string());
    if (!text) return text.error();
    auto rewritten = with_bench(*text, list);
    if (!rewritten) return make_error(ErrorKind::invalid_input, "{}/task.toml: {}", task->dir, rewritten.error().message);
    const std::string header = fmt::format("# Written by `kforge infer --emit-tasks` for {}: bench = the model's shapes.\n", model);
    std::ofstream file(dir / "task.toml", std::ios::trunc);
    file << header << *rewritten;
    if (!file.flush()) return make_error(ErrorKind::io, "{}/task.toml: cannot write", dir.string());
    if (auto loaded = load_task(dir.string()); !loaded) return loaded.error();
  }
  return {};
}

struct MakeModelArgs {
  LlamaConfig config{.dim = 0, .hidden_dim = 0, .n_layers = 0, .n_heads = 0, .n_kv_heads = 0, .vocab_size = 0,
                     .seq_len = 256};
  std::string out;
  std::uint64_t seed = 1;
};

// The tokenizer written beside a model: m.bin -> m.tokenizer.bin.
std::string tokenizer_beside(const std::string& model) {
  return fs::path(model).replace_extension(".tokenizer.bin").string();
}

int run_make_model(MakeModelArgs& a) {
  LlamaConfig& c = a.config;
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  if (c.hidden_dim == 0) c.hidden_dim = std::max(32, (8 * c.dim / 3 + 31) / 32 * 32);  // llama2.c's rule of thumb
  if (Status s = check_llama_config(c); !s) return report(s.error());
  if (Status s = write_synthetic_llama(a.out, c, a.seed); !s) return report(s.error());
  // A llama2.c tokenizer needs its byte pieces and " ": under kMinVocab tokens there is none to
  // write, and one left beside an earlier model of this name would not fit this one.
  const std::string tokenizer = tokenizer_beside(a.out);
  std::string wrote_tokenizer;
  if (c.vocab_size >= LlamaTokenizer::kMinVocab) {
    if (Status s = LlamaTokenizer::write_synthetic(tokenizer, c.vocab_size); !s) return report(s.error());
    wrote_tokenizer = fmt::format("tokenizer {}", tokenizer);
  } else {
    std::error_code ec;
    const bool removed = fs::remove(tokenizer, ec);
    wrote_tokenizer = fmt::format(
        "no tokenizer{}: a llama2.c tokenizer needs --vocab >= {} (<unk>, <s>, </s>, 256 byte pieces, \" \"); "
        "prompt with token ids",
        removed ? fmt::format(" (removed the earlier {})", tokenizer) : "", LlamaTokenizer::kMinVocab);
  }
  fmt::print("wrote {}: {}; {:.1f}M parameters, {:.1f} MB; {}\n", a.out, c.describe(),
             static_cast<double>(c.parameters()) / 1e6, static_cast<double>(c.file_bytes()) / 1e6, wrote_tokenizer);
  return kExitOk;
}

// --prompt: token ids ("1 345 22" or "1,345,22"), or text through the tokenizer; empty: <s>.
Result<std::vector<int>> parse_prompt(const std::string& prompt, const LlamaTokenizer* tokenizer) {
  if (prompt.empty()) return std::vector<int>{1};
  static const std::regex ids("^\\s*[0-9]+([\\s,]+[0-9]+)*\\s*$");
  if (std::regex_match(prompt, ids)) {
    std::vector<int> out;
    const std::regex number("[0-9]+");
    for (auto it = std::sregex_iterator(prompt.begin(), prompt.end(), number); it != std::sregex_iterator(); ++it) {
      const long long v = std::stoll(it->str().substr(0, 12));
      if (v > INT32_MAX) return make_error(ErrorKind::invalid_input, "--prompt: token {} is out of range", it->str());
      out.push_back(static_cast<int>(v));
    }
    return out;
  }
  if (!tokenizer)
    return make_error(ErrorKind::invalid_input,
                      "--prompt: text needs a tokenizer (--tokenizer FILE, or one beside the model); give token ids instead");
  return tokenizer->encode(prompt);
}

struct Run {
  std::vector<int> tokens;                  // generated
  std::vector<std::vector<float>> logits;   // per step (with keep_logits)
  double prefill_s = 0, decode_s = 0;
  std::vector<LlamaDecoder::OpTime> op_times;
  std::vector<std::string> kernels;
};

// Prefill `prompt`, then decode until `steps` tokens are out. With `forced`, the tokens fed back
// are those (so two runs see the same inputs); with keep_logits, the classifier is llm/gemv and
// the argmax is taken here, else llm/lmhead_argmax.
Result<Run> generate(const LlamaModel& model, KernelLibrary& library, const std::vector<int>& prompt, int steps,
                     const LlamaRunOptions& options, bool keep_logits, const std::vector<int>* forced,
                     const std::function<void(int previous, int token)>& on_token) {
  auto decoder = LlamaDecoder::create(model, library, options);
  if (!decoder) return decoder.error();
  Run run;
  auto next = [&](std::span<const int> input) -> Result<int> {
    if (!keep_logits) return decoder->forward_greedy(input);
    auto logits = decoder->forward(input);
    if (!logits) return logits.error();
    run.logits.emplace_back(logits->begin(), logits->end());
    return static_cast<int>(std::max_element(logits->begin(), logits->end()) - logits->begin());
  };
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  auto token = next(prompt);
  if (!token) return token.error();
  run.prefill_s = std::chrono::duration<double>(clock::now() - start).count();
  int previous = prompt.back();
  start = clock::now();
  for (int step = 0; step < steps; ++step) {
    const int t = forced ? (*forced)[static_cast<std::size_t>(step)] : *token;
    run.tokens.push_back(t);
    if (on_token) on_token(previous, t);
    previous = t;
    if (step + 1 == steps) break;
    token = next(std::span(&t, 1));
    if (!token) return token.error();
  }
  run.decode_s = std::chrono::duration<double>(clock::now() - start).count();
  run.op_times = decoder->op_times();
  run.kernels = decoder->explain();
  return run;
}

std::string rates(const Run& run, std::size_t prompt_tokens, int steps) {
  return fmt::format("prefill {} tokens in {:.3f} s, {:.1f} tokens/s; decode {} tokens in {:.3f} s, {:.1f} tokens/s",
                     prompt_tokens, run.prefill_s, static_cast<double>(prompt_tokens) / run.prefill_s, steps - 1,
                     run.decode_s, steps > 1 ? (steps - 1) / run.decode_s : 0.0);
}

// "12 kernels: 8 tuned (exact 6, nearest_dyn 2), 4 baseline".
std::string kernel_summary(const std::vector<std::string>& kernels) {
  std::map<std::string, int> by_match;
  for (const auto& line : kernels) {
    const auto colon = line.find(": ");
    const std::string rest = colon == std::string::npos ? "" : line.substr(colon + 2);
    by_match[rest.starts_with("exact")           ? "exact"
             : rest.starts_with("nearest dynamic") ? "nearest_dyn"
             : rest.starts_with("nearest device")  ? "nearest_device"
                                                   : "baseline"]++;
  }
  const int tuned = by_match["exact"] + by_match["nearest_dyn"] + by_match["nearest_device"];
  return fmt::format("{} kernels: {} tuned (exact {}, nearest_dyn {}, nearest_device {}), {} baseline", kernels.size(),
                     tuned, by_match["exact"], by_match["nearest_dyn"], by_match["nearest_device"], by_match["baseline"]);
}

int run_infer(const Context& context, InferArgs& a) {
  if (a.model.empty()) return report(make_error(ErrorKind::invalid_input, "--model FILE is required (or: infer make-model)"));
  const LlamaWeightFormat format = a.weights == "q8_0" ? LlamaWeightFormat::q8_0 : LlamaWeightFormat::f32;
  auto model = LlamaModel::load(a.model, format);
  if (!model) return report(model.error());
  const LlamaConfig& c = model->config();
  LlamaRunOptions options{.max_chunk = a.batch};

  if (a.emit_tasks) {
    for (const auto& p : LlamaDecoder::problems(c, options, format)) {
      std::string dims;
      for (const auto& [name, value] : p.dims) dims += fmt::format("{}{}={}", dims.empty() ? "" : ",", name, value);
      fmt::print("{} {}  # {}\n", p.op, dims, p.why);
    }
    if (!a.tasks_out.empty()) {
      if (Status s = write_model_tasks(context.resolved_tasks_dir(), LlamaDecoder::problems(c, options, format),
                                       a.tasks_out, a.model);
          !s)
        return report(s.error());
      fmt::print("# wrote these tasks with the shapes above as bench shapes to {}; tune them with\n"
                 "#   kforge --tasks-dir {} search --suite llm\n",
                 a.tasks_out, a.tasks_out);
      return kExitOk;
    }
    fmt::print(
        "# kforge search tunes each task at the bench shapes of its task.toml: add --tasks-out DIR to write\n"
        "# copies of these tasks with the shapes above as bench shapes, then: kforge --tasks-dir DIR search --suite llm.\n"
        "# Elsewhere the library falls back to the nearest tuned M (the token count) at the same other dims,\n"
        "# else to the baseline.\n");
    return kExitOk;
  }

  // The tokenizer: --tokenizer, else one beside the model (m.tokenizer.bin, then tokenizer.bin).
  std::optional<LlamaTokenizer> tokenizer;
  if (!a.tokenizer.empty()) {
    auto t = LlamaTokenizer::load(a.tokenizer, c.vocab_size);
    if (!t) return report(t.error());
    tokenizer = std::move(*t);
  } else {
    for (const std::string& path : {tokenizer_beside(a.model), (fs::path(a.model).parent_path() / "tokenizer.bin").string()})
      if (fs::is_regular_file(path)) {
        auto t = LlamaTokenizer::load(path, c.vocab_size);
        if (t) tokenizer = std::move(*t);
        else fmt::print(stderr, "kforge: note: {}; printing token ids\n", t.error().message);
        break;
      }
  }
  auto prompt = parse_prompt(a.prompt, tokenizer ? &*tokenizer : nullptr);
  if (!prompt) return report(prompt.error());
  if (prompt->empty()) return report(make_error(ErrorKind::invalid_input, "--prompt: no tokens"));
  for (int t : *prompt)
    if (t >= c.vocab_size)
      return report(make_error(ErrorKind::invalid_input, "--prompt: token {} is outside the vocabulary (0..{})", t,
                               c.vocab_size - 1));
  if (static_cast<int>(prompt->size()) >= c.seq_len)
    return report(make_error(ErrorKind::invalid_input, "--prompt: {} tokens fill the model's context (seq_len {})",
                             prompt->size(), c.seq_len));
  const int steps = std::min(a.steps, c.seq_len - static_cast<int>(prompt->size()) + 1);

  // Both libraries run on --backend: on a GPU each opens the device, the weights go to its memory.
  KernelLibraryOptions library_options;
  library_options.tasks_dir = context.resolved_tasks_dir();
  library_options.backend = a.backend;
  auto baseline = KernelLibrary::open_baseline(library_options);
  if (!baseline) return report(baseline.error());
  std::optional<KernelLibrary> tuned;
  if (fs::exists(a.db_path)) {
    auto opened = KernelLibrary::open(a.db_path, library_options);
    if (!opened) return report(opened.error());
    tuned = std::move(*opened);
    if (tuned->size() == 0)
      fmt::print(stderr, "kforge: note: {} has no kernels for this device ({}): every op runs its baseline\n",
                 a.db_path, tuned->device_key());
  } else if (a.compare) {
    return report(make_error(ErrorKind::invalid_input,
                             "--compare: no kernel library at {} to compare with the baseline (--db FILE)", a.db_path));
  } else {
    fmt::print(stderr, "kforge: note: no kernel library at {}: running the baseline kernels\n", a.db_path);
  }
  KernelLibrary& library = tuned ? *tuned : *baseline;

  fmt::print("model {}: {}, {} weights; kernels on {}\n", a.model, c.describe(), to_string(format),
             library.device_key());
  auto print_token = [&](int previous, int token) {
    if (tokenizer) fmt::print("{}", tokenizer->decode(previous, token));
    else fmt::print("{} ", token);
    std::fflush(stdout);
  };
  if (!a.compare) {
    auto run = generate(*model, library, *prompt, steps, options, false, nullptr, print_token);
    fmt::print("\n");
    if (!run) return report(run.error());
    fmt::print("{}\n{}\n", kernel_summary(run->kernels), rates(*run, prompt->size(), steps));
    if (a.show_kernels)
      for (const auto& line : run->kernels) fmt::print("  {}\n", line);
    return kExitOk;
  }

  // --compare: the baseline first (its tokens), then the tuned kernels fed the same tokens. Each
  // kernel call is timed (on a GPU, waited for), for the table of time per op.
  options.profile = true;
  auto base = generate(*model, *baseline, *prompt, steps, options, true, nullptr, print_token);
  fmt::print("\n");
  if (!base) return report(base.error());
  auto fast = generate(*model, library, *prompt, steps, options, true, &base->tokens, nullptr);
  if (!fast) return report(fast.error());
  double worst = 0;
  int worst_step = 0;
  for (std::size_t step = 0; step < base->logits.size(); ++step) {
    const auto& want = base->logits[step];
    const auto& got = fast->logits[step];
    double diff = 0, scale = 1;
    for (std::size_t i = 0; i < want.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(got[i] - want[i])));
      scale = std::max(scale, static_cast<double>(std::abs(want[i])));
    }
    if (!(diff / scale <= worst)) worst = diff / scale, worst_step = static_cast<int>(step);
  }
  fmt::print("baseline: {}\n", rates(*base, prompt->size(), steps));
  fmt::print("tuned:    {}\n  {}\n", rates(*fast, prompt->size(), steps), kernel_summary(fast->kernels));
  if (a.show_kernels)
    for (const auto& line : fast->kernels) fmt::print("  {}\n", line);
  fmt::print("speedup: prefill {:.2f}x, decode {:.2f}x\n", base->prefill_s / fast->prefill_s,
             fast->decode_s > 0 ? base->decode_s / fast->decode_s : 0.0);
  fmt::print("time per op, summed over the run:\n{:<18} {:>8} {:>12} {:>12} {:>8}\n", "op", "calls", "baseline ms",
             "tuned ms", "speedup");
  for (const auto& b : base->op_times) {
    double tuned_s = 0;
    for (const auto& f : fast->op_times)
      if (f.op == b.op) tuned_s = f.seconds;
    fmt::print("{:<18} {:>8} {:>12.3f} {:>12.3f} {:>7.2f}x\n", b.op, b.calls, 1e3 * b.seconds, 1e3 * tuned_s,
               tuned_s > 0 ? b.seconds / tuned_s : 0.0);
  }
  const bool agree = worst <= a.tolerance;
  fmt::print("logits {} at all {} steps: worst max|tuned - baseline| / max(1, max|baseline|) = {:.3g} at step {} "
             "(tolerance {:.3g})\n",
             agree ? "agree" : "DISAGREE", base->logits.size(), worst, worst_step, a.tolerance);
  return agree ? kExitOk : kExitKernelFailed;
}

}  // namespace

void add_infer_command(CLI::App& app, Context& context) {
  auto args = std::make_shared<InferArgs>();
  auto* infer = app.add_subcommand(
      "infer", "Generate greedily with a llama2.c checkpoint, every op a kernel of the library; tokens/s");
  infer->add_option("--model", args->model, "llama2.c checkpoint (kforge infer make-model writes a synthetic one)");
  infer->add_option("--prompt", args->prompt, "Token ids (\"1 345 22\") or text (needs a tokenizer); default: <s>");
  infer->add_option("--steps", args->steps, "Tokens to generate (default 128, at most up to the context)")
      ->check(CLI::Range(1, 1 << 30));
  infer->add_option("--batch", args->batch,
                    "Prompt tokens per forward pass (default 64): gemm_flat up to 64, gemm_prefill above")
      ->check(CLI::Range(1, 4096));
  infer->add_option("--backend", args->backend,
                    "Where the kernels run: cpu (default), cuda or hip (the first device; weights in its memory)")
      ->check(CLI::IsMember({"cpu", "cuda", "hip"}));
  infer->add_option("--tokenizer", args->tokenizer,
                    "llama2.c tokenizer.bin (default: M.tokenizer.bin or tokenizer.bin beside the model M.bin)");
  infer->add_flag("--compare", args->compare,
                  "Also run the baseline kernels: check the logits agree at every step, both speeds, time per op");
  infer->add_option("--tolerance", args->tolerance,
                    "--compare: max |tuned - baseline| / max(1, max |baseline|) per step (default 1e-3)")
      ->check(CLI::PositiveNumber);
  infer->add_option("--weights", args->weights,
                    "f32 (default), or q8_0: the projections quantized at load, run by llm/gemv_q8_0")
      ->check(CLI::IsMember({"f32", "q8_0"}));
  infer->add_flag("--emit-tasks", args->emit_tasks, "Print the (op, shape) problems the model needs, one per line");
  infer->add_option("--tasks-out", args->tasks_out,
                    "With --emit-tasks: write those tasks, their bench shapes the model's, to this new folder");
  infer->add_flag("--kernels", args->show_kernels, "Print which kernel each problem resolved to, and why");
  add_db_option(*infer, args->db_path);

  auto make = std::make_shared<MakeModelArgs>();
  auto* make_model = infer->add_subcommand("make-model", "Write a deterministic synthetic llama2.c checkpoint and tokenizer");
  make_model->add_option("--dim", make->config.dim, "Model width")->required()->check(CLI::PositiveNumber);
  make_model->add_option("--layers", make->config.n_layers, "Layers")->required()->check(CLI::PositiveNumber);
  make_model->add_option("--heads", make->config.n_heads, "Query heads")->required()->check(CLI::PositiveNumber);
  make_model->add_option("--kv-heads", make->config.n_kv_heads, "Key/value heads (default: --heads)")
      ->check(CLI::PositiveNumber);
  make_model->add_option("--vocab", make->config.vocab_size, "Vocabulary size (a tokenizer is written from 260)")
      ->required()
      ->check(CLI::PositiveNumber);
  make_model->add_option("--hidden", make->config.hidden_dim, "FFN width (default: 8 dim / 3, rounded up to 32)")
      ->check(CLI::PositiveNumber);
  make_model->add_option("--seq-len", make->config.seq_len, "Context length (default 256)")->check(CLI::PositiveNumber);
  make_model->add_option("--out", make->out, "Checkpoint file to write")->required();
  make_model->add_option("--seed", make->seed, "Seed of the weights (default 1)");

  infer->callback([&context, args, make, make_model] {
    if (make_model->parsed()) context.run = [make] { return run_make_model(*make); };
    else context.run = [&context, args] { return run_infer(context, *args); };
  });
}

}  // namespace kforge::cli
