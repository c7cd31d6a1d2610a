// kforge search: the evolutionary search over a suite's tasks, with an LLM or offline.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unistd.h>

#include "agent/search.hpp"
#include "agent/worker_pool.hpp"
#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge::cli {
namespace {

struct SearchArgs {
  std::string suite, tasks, backend = "cpu", db_path, worker, llm_file, llm_url, model, time, resume, replay, trace;
  std::vector<std::string> workers;      // --workers SPEC[,SPEC...], each time it is given
  CLI::Option* resume_option = nullptr;  // given with no value: the latest unfinished run
  double budget_usd = 0;
  SearchOptions options;
};

// "90", "90s", "30m", "2h" -> seconds.
Result<double> parse_duration(const std::string& text) {
  if (text.empty()) return std::numeric_limits<double>::infinity();
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  const double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : -1;
  if (used == 0 || scale < 0 || value <= 0)
    return make_error(ErrorKind::invalid_input, "--time {}: expected a duration such as 90s, 30m or 2h", text);
  return value * scale;
}

// The tasks to search: the suite's, or the ones --tasks names (NAME or SUITE/NAME).
Result<std::vector<Task>> chosen_tasks(const std::string& root, const std::string& suite, const std::string& names) {
  auto all = load_tasks(root, suite);
  if (!all) return all.error();
  if (names.empty()) return all;
  std::vector<Task> chosen;
  std::istringstream list(names);
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    auto it = std::find_if(all->begin(), all->end(), [&](const Task& t) { return t.id() == name || t.name == name; });
    if (it == all->end())
      return make_error(ErrorKind::invalid_input, "--tasks: no task '{}' in {}", name,
                        suite.empty() ? "any suite" : "suite " + suite);
    chosen.push_back(*it);
  }
  return chosen;
}

// Kernels the library published for the same op on other devices: what the LLM may adapt.
std::string retrieved_for(const KernelStore& store, const Task& task, const std::string& device) {
  auto best = store.best("", task.id());
  if (!best) return "";
  std::set<std::string> shown;
  std::string out;
  for (const auto& row : *best) {
    if (row.device_key == device || !shown.insert(row.kernel_key).second || shown.size() > 2) continue;
    auto kernel = store.find_kernel(row.kernel_key);
    if (!kernel || !*kernel) continue;
    out += fmt::format("### {} on {} ({}, {:.2f}x its baseline at {})\n\n```\n{}\n```\n\n", (*kernel)->origin,
                       row.device_key, (*kernel)->backend, row.speedup, row.static_key, (*kernel)->source);
  }
  return out;
}

std::string cpu_arch() { return __builtin_cpu_supports("avx512f") ? "x86-64-avx512" : "x86-64-avx2"; }

// Set by the first Ctrl-C (or SIGTERM) and handed to every task's search: each stops after the
// evaluation in progress. A second Ctrl-C ends the process at once.
std::atomic<bool> g_stop_requested{false};
volatile std::sig_atomic_t g_interrupts = 0;
void on_interrupt(int) {
  g_interrupts = g_interrupts + 1;
  if (g_interrupts > 1) std::_Exit(130);  // a second Ctrl-C: now
  g_stop_requested = true;
}

// An LLM call as the library keeps it, and back (what a replay answers from).
LlmCallRecord call_record(const std::string& run_id, const LlmAttempt& a) {
  LlmCallRecord c;
  c.run_id = run_id, c.model = a.model, c.endpoint = a.endpoint, c.request = a.request, c.response = a.response;
  c.status = a.status, c.prompt_tokens = a.input_tokens, c.completion_tokens = a.output_tokens;
  c.cost_usd = a.cost_usd, c.latency_ms = a.latency_s * 1000, c.request_hash = a.request_hash;
  c.http_status = a.http_status, c.attempt = a.attempt, c.error = a.error, c.provider = a.provider;
  return c;
}
LlmAttempt attempt_of(const LlmCallRecord& c) {
  LlmAttempt a;
  a.endpoint = c.endpoint, a.provider = c.provider, a.model = c.model, a.request_hash = c.request_hash;
  a.request = c.request, a.response = c.response, a.http_status = c.http_status, a.status = c.status;
  a.attempt = c.attempt, a.input_tokens = c.prompt_tokens, a.output_tokens = c.completion_tokens;
  a.cost_usd = c.cost_usd, a.latency_s = c.latency_ms / 1000;
  return a;
}

// Progress: one line per task updated in place on a terminal, plain log lines otherwise.
SearchReporter terminal_reporter(bool tty) {
  SearchReporter reporter;
  reporter.log = [tty](const std::string& line) {
    if (!tty) fmt::print(stderr, "{}\n", line);
  };
  reporter.progress = [tty](const TaskOutcome& o, int planned) {
    if (!tty) return;
    const double per = o.evaluations ? o.seconds / o.evaluations : 0;
    fmt::print(stderr, "\r\033[K{}: {}/{} evaluations, {} correct, {} failed, best {:.2f}x ({:.0f}% of roofline){}, ETA {:.0f} s",
               o.task, o.evaluations, planned, o.correct, o.failed, o.best_speedup, o.best_roofline_pct,
               o.cost_usd > 0 ? fmt::format(", ${:.2f}", o.cost_usd) : "", per * std::max(0, planned - o.evaluations));
  };
  return reporter;
}

// --trace: every compile and evaluation as a Chrome trace event. The search thread is row 0; the
// compiles on request threads fill the first row free at their start, so no row overlaps itself.
class Trace {
 public:
  std::string task;  // the task searched now, which each event names

  void add(const SearchSpan& s) {
    std::size_t row = 0;
    if (s.off_search_thread) {
      while (row < row_ends_.size() && row_ends_[row] > s.start_s) ++row;
      if (row == row_ends_.size()) row_ends_.push_back(0);
      row_ends_[row++] = s.end_s;
    }
    events_.push_back({{"name", s.what + " " + s.origin}, {"cat", s.what}, {"ph", "X"}, {"pid", 1}, {"tid", row},
                       {"ts", s.start_s * 1e6}, {"dur", (s.end_s - s.start_s) * 1e6}, {"args", {{"task", task}}}});
  }

  Status write(const std::string& path) {
    for (std::size_t row = 0; row <= row_ends_.size(); ++row)
      events_.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", row},
                         {"args", {{"name", row ? fmt::format("compiles on request threads ({})", row) : "search thread"}}}});
    std::ofstream out(path);
    out << nlohmann::json{{"traceEvents", events_}}.dump() << "\n";
    if (!out) return make_error(ErrorKind::io, "--trace {}: cannot write", path);
    return {};
  }

 private:
  nlohmann::json events_ = nlohmann::json::array();
  std::vector<double> row_ends_;
};

// One `kforge search`: the run started or resumed, the LLM connected, each task searched in turn,
// then the summary. Any failure before the summary is reported as bad input.
class SearchCommand {
 public:
  SearchCommand(const Context& context, SearchArgs args)
      : context_(context), args_(std::move(args)), tty_(isatty(STDERR_FILENO)) {}

  int run() {
    if (auto s = prepare(); !s) return report(s.error());
    SearchReporter reporter = terminal_reporter(tty_);
    if (!args_.trace.empty()) reporter.span = [this](const SearchSpan& s) { trace_.add(s); };
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    fmt::print(stderr, "search run {}: {} task(s) on {} ({}), {}, up to {} evaluations per task; results in {}\n",
               run_.id, tasks_.size(), target_->device, args_.backend,
               llm_ ? "LLM " + run_.llm_models : std::string("offline (param mutation, crossover, variant switch)"),
               args_.options.evaluations, args_.db_path);
    if (auto s = search_tasks(reporter); !s) return report(s.error());
    return summarize();
  }

 private:
  Status prepare() {
    auto store = KernelStore::open(args_.db_path);
    if (!store) return store.error();
    store_.emplace(std::move(*store));
    // A resumed run keeps its options and tasks; only the LLM settings come from this command line.
    if (args_.resume_option->count() > 0)
      if (auto s = find_resumed(); !s) return s;
    if (auto s = choose_tasks(); !s) return s;
    if (auto s = configure_llm(); !s) return s;
    auto target = open_target(args_.backend);
    if (!target) return target.error();
    target_.emplace(std::move(*target));
    if (auto s = start_workers(); !s) return s;
    if (run_.id.empty()) {
      if (auto s = start_run(); !s) return s;
    } else if (!run_.llm_models.empty() && !llm_config_) {
      return make_error(ErrorKind::invalid_input,
                        "--resume: run {} used an LLM ({}): give --llm FILE or --llm-url URL --model NAME again",
                        run_.id, run_.llm_models);
    }
    return connect_llm();
  }

  // --workers: the pool, started before the run is recorded, so that a bad worker costs nothing.
  Status start_workers() {
    if (args_.workers.empty()) return {};
    if (!args_.worker.empty()) return make_error(ErrorKind::invalid_input, "give --worker or --workers, not both");
    auto pool = open_worker_pool(args_.workers, *target_);
    if (!pool) return pool.error();
    pool_ = std::move(*pool);
    for (int i = 0; i < pool_->size(); ++i)
      fmt::print(stderr, "worker {}: {}, {:.1f} ms round trip{}\n", pool_->info(i).label(), pool_->info(i).device,
                 pool_->info(i).latency_ms,
                 pool_->info(i).compiles_itself ? ", compiles for itself (target " + pool_->info(i).target + ")" : "");
    return {};
  }

  // --resume: the latest unfinished search run, or the one named, with the options and tasks it
  // began with, and the state each of its tasks saved.
  Status find_resumed() {
    auto runs = store_->runs();
    if (!runs) return runs.error();
    for (auto it = runs->rbegin(); it != runs->rend() && run_.id.empty(); ++it)
      if (it->command.rfind("search", 0) == 0 && (args_.resume.empty() ? it->ended_at.empty() : it->id == args_.resume))
        run_ = *it;
    if (run_.id.empty())
      return make_error(ErrorKind::invalid_input, "--resume: {} in {}",
                        args_.resume.empty() ? "no unfinished search run" : "no search run " + args_.resume,
                        args_.db_path);
    auto states = store_->search_states(run_.id);
    if (!states) return states.error();
    saved_states_ = std::move(*states);
    auto saved = saved_search_options(*store_, run_.id);
    if (!saved) return make_error(saved.error().kind, "--resume: {}", saved.error().message);
    args_.options = std::move(saved->options);
    args_.suite = std::move(saved->suite), args_.tasks = std::move(saved->tasks);
    args_.backend = args_.options.backend;
    return {};
  }

  Status choose_tasks() {
    if (args_.suite.empty() && args_.tasks.empty())
      return make_error(ErrorKind::invalid_input, "say what to search: --suite NAME [--tasks A,B] or --tasks SUITE/A,...");
    const std::string root = context_.resolved_tasks_dir();
    auto tasks = chosen_tasks(root, args_.suite, args_.tasks);
    if (!tasks) return tasks.error();
    if (tasks->empty()) return make_error(ErrorKind::invalid_input, "suite {} has no tasks", args_.suite);
    tasks_ = std::move(*tasks);
    auto all_tasks = load_tasks(root, args_.suite);
    if (!all_tasks) return all_tasks.error();
    all_tasks_ = std::move(*all_tasks);
    return {};
  }

  // The LLM: a config file, a URL and model, or a replay of a recorded run; none: offline.
  Status configure_llm() {
    if (!args_.llm_file.empty()) {
      auto c = load_llm_config(args_.llm_file);
      if (!c) return c.error();
      llm_config_ = std::move(*c);
    } else if (!args_.llm_url.empty()) {
      if (args_.model.empty()) return make_error(ErrorKind::invalid_input, "--llm-url needs --model NAME");
      llm_config_ = llm_config_from_url(args_.llm_url, args_.model);
    } else if (!args_.model.empty()) {
      return make_error(ErrorKind::invalid_input, "--model needs --llm-url URL (or give --llm FILE)");
    }
    if (!args_.replay.empty())
      if (auto s = load_replay(); !s) return s;
    if (llm_config_ && args_.budget_usd > 0) llm_config_->budget.usd = args_.budget_usd;
    return {};
  }

  // --replay RUN_ID: the calls that run recorded answer this run's, and nothing is sent.
  Status load_replay() {
    auto calls = store_->llm_calls(args_.replay);
    if (!calls) return calls.error();
    if (calls->empty())
      return make_error(ErrorKind::invalid_input, "--replay {}: no LLM calls recorded for that run", args_.replay);
    std::vector<LlmAttempt> attempts;
    for (const auto& c : *calls) attempts.push_back(attempt_of(c));
    client_options_.replay = std::make_shared<LlmReplay>(attempts);
    if (!llm_config_) {  // the endpoint is only a name here: nothing is sent
      LlmEndpoint replayed;
      replayed.name = "replay:" + args_.replay;
      replayed.model = calls->front().model;
      replayed.base_url = "http://replay.invalid";
      llm_config_ = LlmConfig{};
      llm_config_->endpoints.push_back(replayed);
    }
    return {};
  }

  // A new run, recorded with the command that started it, its options saved for --resume.
  Status start_run() {
    auto duration = parse_duration(args_.time);
    if (!duration) return duration.error();
    args_.options.time_s = *duration;
    args_.options.backend = args_.backend;
    run_.id = new_run_id(), run_.kforge_version = KFORGE_VERSION, run_.host = host_cpu_name();
    run_.command = fmt::format("search --suite {} --tasks {} --backend {} --evals {}", args_.suite, args_.tasks,
                               args_.backend, args_.options.evaluations);
    run_.seed = std::to_string(args_.options.seed);
    if (llm_config_)
      for (const auto& e : llm_config_->endpoints) run_.llm_models += (run_.llm_models.empty() ? "" : ",") + e.model;
    if (auto s = store_->record_run(run_); !s) return s;
    return save_search_options(*store_, run_.id, {args_.options, args_.suite, args_.tasks});
  }

  // The client, with a budget shared by all its calls. They are recorded from the client's threads
  // through a connection of their own, which the recording callback holds.
  Status connect_llm() {
    if (!llm_config_) return {};
    struct CallLog {
      explicit CallLog(KernelStore s) : store(std::move(s)) {}
      std::mutex mutex;
      KernelStore store;
    };
    auto second = KernelStore::open(args_.db_path);
    if (!second) return second.error();
    auto calls = std::make_shared<CallLog>(std::move(*second));
    client_options_.budget = std::make_shared<LlmBudget>(llm_config_->budget);
    client_options_.on_call = [calls, run_id = run_.id](const LlmAttempt& a) {
      std::lock_guard lock(calls->mutex);
      if (auto s = calls->store.record_llm_call(call_record(run_id, a)); !s)
        fmt::print(stderr, "kforge: {}\n", s.error().message);
    };
    auto client = LlmClient::create(*llm_config_, client_options_);
    if (!client) return client.error();
    llm_ = std::move(*client);
    return {};
  }

  PromptContext prompts_for(const Task& task) const {
    PromptContext prompts;
    prompts.prompts_dir = context_.resolved_prompts_dir();
    prompts.backend = args_.backend;
    prompts.device = target_->name;
    // The ISA kernels may use: this CPU's for -march=native, else the arch compiled for.
    const bool native = target_->arch == "native";
    prompts.arch = target_->backend->conventions().runs_on_host() && native ? cpu_arch() : target_->arch;
    prompts.exemplar = category_exemplar(task, all_tasks_, args_.backend, prompts.prompts_dir);
    prompts.retrieved = retrieved_for(*store_, task, target_->device);
    return prompts;
  }

  // Each task in turn, with an equal share of the time left, until one is interrupted.
  Status search_tasks(const SearchReporter& reporter) {
    std::vector<std::string> worker_command;
    for (std::istringstream words(args_.worker); words;)
      if (std::string w; words >> w) worker_command.push_back(w);
    auto worker = std::make_shared<Worker>(worker_command);
    const double end = steady_seconds() + args_.options.time_s;
    for (std::size_t i = 0; i < tasks_.size() && !interrupted_; ++i) {
      const Task& task = tasks_[i];
      trace_.task = task.id();
      auto evaluator = Evaluator::create(task, *target_->backend, worker);
      if (!evaluator) return evaluator.error();
      std::unique_ptr<PoolEvaluator> pooled;  // --workers: the evaluations go to the pool
      if (pool_) {
        auto created = PoolEvaluator::create(task, *target_->backend, *pool_, reporter.log);
        if (!created) return created.error();
        pooled = std::move(*created);
      }
      Search search(args_.options, *store_, run_.id, target_->device, prompts_for(task), llm_.get(), reporter,
                    &g_stop_requested);
      const double now = steady_seconds();
      const double deadline = now + (end - now) / static_cast<double>(tasks_.size() - i);
      std::optional<std::string> resumed;
      if (auto it = saved_states_.find(task.id()); it != saved_states_.end()) resumed = it->second;
      auto outcome = pooled ? search.run(*pooled, resumed, deadline) : search.run(*evaluator, resumed, deadline);
      if (tty_) fmt::print(stderr, "\n");
      if (!outcome) return outcome.error();
      fmt::print(stderr, "{}: {}; best {:.2f}x ({})\n", task.id(), outcome->stop_reason, outcome->best_speedup,
                 outcome->best_origin.empty() ? "no correct kernel" : outcome->best_origin);
      interrupted_ = outcome->stop_reason == "interrupted";
      outcomes_.push_back(std::move(*outcome));
    }
    return {};
  }

  // The table of tasks, the compiles and the LLM's spending; the run ended unless interrupted.
  int summarize() {
    fmt::print("\n{:<22} {:>6} {:>5} {:>7} {:>9} {:>9}  {:<24} {}\n", "TASK", "EVALS", "OK", "FAILED", "BEST",
               "ROOFLINE", "KERNEL", "STOPPED");
    int exit_code = kExitOk;
    for (const auto& o : outcomes_) {
      fmt::print("{:<22} {:>6} {:>5} {:>7} {:>9} {:>9}  {:<24} {}\n", o.task, o.evaluations, o.correct, o.failed,
                 o.best_speedup > 0 ? fmt::format("{:.2f}x", o.best_speedup) : "-",
                 o.best_roofline_pct > 0 ? fmt::format("{:.0f}%", o.best_roofline_pct) : "-",
                 o.best_origin.empty() ? "-" : o.best_origin, o.stop_reason);
      if (o.best_key.empty()) exit_code = kExitKernelFailed;
    }
    double compile_s = 0, hidden_s = 0;
    for (const auto& o : outcomes_) compile_s += o.compile_seconds, hidden_s += o.compile_seconds_hidden;
    fmt::print("compiles: {:.1f} s, {}\n", compile_s,
               llm_ ? fmt::format("{:.1f} s of it off the search thread, on the LLM requests' threads", hidden_s)
                    : std::string("all on the search thread (offline)"));
    if (!args_.trace.empty())
      if (auto s = trace_.write(args_.trace); !s) return report(s.error());
    if (llm_ && llm_->budget()) {
      const auto usage = llm_->budget()->usage();
      fmt::print("LLM: {} calls, {} tokens, ${:.4f}\n", usage.calls, usage.tokens, usage.usd);
    }
    if (interrupted_) {
      fmt::print("interrupted: continue with  kforge search --resume {}\n", run_.id);
      return kExitKernelFailed;
    }
    if (auto s = store_->end_run(run_.id); !s) return report(s.error());
    fmt::print("run {} done; the winners are published in {} (kforge db best --db {}{})\n", run_.id, args_.db_path,
               args_.db_path,
               target_->backend->conventions().runs_on_host() ? "" : " --device " + target_->device);
    return exit_code;
  }

  const Context& context_;
  SearchArgs args_;
  const bool tty_;
  std::optional<KernelStore> store_;
  RunRecord run_;
  std::map<std::string, std::string> saved_states_;  // per task, of a resumed run
  std::vector<Task> tasks_, all_tasks_;
  std::optional<LlmConfig> llm_config_;
  LlmClientOptions client_options_;
  std::optional<Target> target_;
  std::unique_ptr<WorkerPool> pool_;  // --workers
  std::unique_ptr<LlmClient> llm_;
  Trace trace_;
  std::vector<TaskOutcome> outcomes_;
  bool interrupted_ = false;
};

}  // namespace

void add_search_command(CLI::App& app, Context& context) {
  auto args = std::make_shared<SearchArgs>();
  auto* search = app.add_subcommand("search", "Evolve kernels for a suite's tasks (with an LLM, or offline by tuning params)");
  search->add_option("--suite", args->suite, "Suite to search, e.g. llm");
  search->add_option("--tasks", args->tasks, "Comma-separated task names (NAME or SUITE/NAME); default: the whole suite");
  search->add_option("--backend", args->backend, "cpu (default), cuda, hip")->check(CLI::IsMember({"cpu", "cuda", "hip"}));
  search->add_option("--llm", args->llm_file, "LLM endpoint file (TOML, see README); none: offline search");
  search->add_option("--llm-url", args->llm_url, "An OpenAI-compatible or Anthropic base URL (with --model)");
  search->add_option("--model", args->model, "Model name for --llm-url");
  search->add_option("--evals", args->options.evaluations, "Evaluations per task, seeds included (default 30)")
      ->check(CLI::Range(1, 1000000));
  search->add_option("--budget-usd", args->budget_usd, "Stop LLM calls once this much is spent, in flight included")
      ->check(CLI::PositiveNumber);
  search->add_option("--time", args->time, "Wall-clock limit for the whole run: 90s, 30m, 2h (default none)");
  search->add_option("--target-speedup", args->options.target_speedup, "Stop a task once its best reaches this speedup")
      ->check(CLI::PositiveNumber);
  search->add_option("--patience", args->options.patience,
                     "Stop a task after this many evaluations without a 0.5% gain (default 100)")
      ->check(CLI::Range(1, 1000000));
  search->add_option("--islands", args->options.islands, "Islands per task (default 4)")->check(CLI::Range(1, 64));
  search->add_option("--seed", args->options.seed, "Seed of the search's random choices (default 42)");
  search->add_option("--concurrency", args->options.concurrency, "LLM requests in flight (default 4)")
      ->check(CLI::Range(1, 64));
  search->add_option("--timeout", args->options.eval.timeout_s, "Seconds one evaluation may take (default 180)")
      ->check(CLI::Range(0.1, 86400.0));
  args->resume_option =
      search->add_option("--resume", args->resume, "Continue the latest unfinished search run, or run RUN_ID")
          ->expected(0, 1);
  search->add_option("--replay", args->replay, "Answer LLM calls from the ones recorded by run RUN_ID (no network)");
  search->add_option("--trace", args->trace,
                     "Write each compile and evaluation as a Chrome trace event to this file (ui.perfetto.dev)");
  search->add_option("--worker", args->worker, "Command that starts the evaluation worker (default: 'kforge worker')");
  search->add_option("--workers", args->workers,
                     "Evaluate on many workers at once: SPEC[,SPEC...] of local:N, ssh:HOST[:N], "
                     "slurm:N[:SRUN_ARGS], cmd:COMMAND (see docs/cli.md)");
  add_db_option(*search, args->db_path);
  search->callback([&context, args] { context.run = [&context, args] { return SearchCommand(context, *args).run(); }; });
}

}  // namespace kforge::cli
