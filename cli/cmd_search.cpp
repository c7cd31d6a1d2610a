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
#include "cli/cli.hpp"
#include "evaluator/evaluator.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge::cli {
namespace {

struct SearchArgs {
  std::string suite, tasks, backend = "cpu", db_path, worker, llm_file, llm_url, model, time, resume, replay, trace;
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

int run_search(const Context& context, SearchArgs args) {
  const std::string root = context.resolved_tasks_dir();
  auto store = KernelStore::open(args.db_path);
  if (!store) return report(store.error());

  // A resumed run keeps its options and tasks; only the LLM settings come from this command line.
  RunRecord run;
  std::map<std::string, std::string> saved;
  if (args.resume_option->count() > 0) {
    auto runs = store->runs();
    if (!runs) return report(runs.error());
    for (auto it = runs->rbegin(); it != runs->rend() && run.id.empty(); ++it)
      if (it->command.rfind("search", 0) == 0 && (args.resume.empty() ? it->ended_at.empty() : it->id == args.resume))
        run = *it;
    if (run.id.empty())
      return report(make_error(ErrorKind::invalid_input, "--resume: {} in {}",
                               args.resume.empty() ? "no unfinished search run" : "no search run " + args.resume,
                               args.db_path));
    auto states = store->search_states(run.id);
    if (!states) return report(states.error());
    saved = std::move(*states);
    if (!saved.count("")) return report(make_error(ErrorKind::invalid_input, "--resume: run {} saved no options", run.id));
    try {
      const auto j = nlohmann::json::parse(saved.at(""));
      args.options = SearchOptions::from_json(j.at("options"));
      args.suite = j.at("suite"), args.tasks = j.at("tasks");
    } catch (const nlohmann::json::exception& e) {
      return report(make_error(ErrorKind::invalid_input, "--resume: run {}: malformed options: {}", run.id, e.what()));
    }
    args.backend = args.options.backend;
  }
  if (args.suite.empty() && args.tasks.empty())
    return report(make_error(ErrorKind::invalid_input, "say what to search: --suite NAME [--tasks A,B] or --tasks SUITE/A,..."));
  auto tasks = chosen_tasks(root, args.suite, args.tasks);
  if (!tasks) return report(tasks.error());
  if (tasks->empty()) return report(make_error(ErrorKind::invalid_input, "suite {} has no tasks", args.suite));
  auto all_tasks = load_tasks(root, args.suite);
  if (!all_tasks) return report(all_tasks.error());

  // The LLM: a config file, a URL and model, or a replay of a recorded run; none: offline.
  std::optional<LlmConfig> llm_config;
  if (!args.llm_file.empty()) {
    auto c = load_llm_config(args.llm_file);
    if (!c) return report(c.error());
    llm_config = std::move(*c);
  } else if (!args.llm_url.empty()) {
    if (args.model.empty()) return report(make_error(ErrorKind::invalid_input, "--llm-url needs --model NAME"));
    llm_config = llm_config_from_url(args.llm_url, args.model);
  } else if (!args.model.empty()) {
    return report(make_error(ErrorKind::invalid_input, "--model needs --llm-url URL (or give --llm FILE)"));
  }
  LlmClientOptions client_options;
  if (!args.replay.empty()) {
    auto calls = store->llm_calls(args.replay);
    if (!calls) return report(calls.error());
    if (calls->empty())
      return report(make_error(ErrorKind::invalid_input, "--replay {}: no LLM calls recorded for that run", args.replay));
    std::vector<LlmAttempt> attempts;
    for (const auto& c : *calls) {
      LlmAttempt a;
      a.endpoint = c.endpoint, a.provider = c.provider, a.model = c.model, a.request_hash = c.request_hash;
      a.request = c.request, a.response = c.response, a.http_status = c.http_status, a.status = c.status;
      a.attempt = c.attempt, a.input_tokens = c.prompt_tokens, a.output_tokens = c.completion_tokens;
      a.cost_usd = c.cost_usd, a.latency_s = c.latency_ms / 1000;
      attempts.push_back(std::move(a));
    }
    client_options.replay = std::make_shared<LlmReplay>(attempts);
    if (!llm_config) {  // the endpoint is only a name here: nothing is sent
      LlmEndpoint replayed;
      replayed.name = "replay:" + args.replay;
      replayed.model = calls->front().model;
      replayed.base_url = "http://replay.invalid";
      llm_config = LlmConfig{};
      llm_config->endpoints.push_back(replayed);
    }
  }
  if (llm_config && args.budget_usd > 0) llm_config->budget.usd = args.budget_usd;

  auto compiler = HostCompiler::create();
  if (!compiler) return report(compiler.error());
  auto target = open_target(args.backend);
  if (!target) return report(target.error());

  if (run.id.empty()) {
    auto duration = parse_duration(args.time);
    if (!duration) return report(duration.error());
    args.options.time_s = *duration;
    args.options.backend = args.backend;
    run.id = new_run_id(), run.kforge_version = KFORGE_VERSION, run.host = host_cpu_name();
    run.command = fmt::format("search --suite {} --tasks {} --backend {} --evals {}", args.suite, args.tasks,
                              args.backend, args.options.evaluations);
    run.seed = std::to_string(args.options.seed);
    if (llm_config)
      for (const auto& e : llm_config->endpoints) run.llm_models += (run.llm_models.empty() ? "" : ",") + e.model;
    if (auto s = store->record_run(run); !s) return report(s.error());
    const nlohmann::json saved_options = {
        {"options", args.options.to_json()}, {"suite", args.suite}, {"tasks", args.tasks}};
    if (auto s = store->save_search_state(run.id, "", saved_options.dump()); !s) return report(s.error());
  } else if (!run.llm_models.empty() && !llm_config) {
    return report(make_error(ErrorKind::invalid_input,
                             "--resume: run {} used an LLM ({}): give --llm FILE or --llm-url URL --model NAME again",
                             run.id, run.llm_models));
  }

  // LLM calls are recorded from the client's threads through a connection of their own.
  // Declared before the client, so they outlive every callback it makes.
  std::mutex call_mutex;
  std::shared_ptr<KernelStore> call_store;
  std::unique_ptr<LlmClient> llm;
  if (llm_config) {
    auto second = KernelStore::open(args.db_path);
    if (!second) return report(second.error());
    call_store = std::make_shared<KernelStore>(std::move(*second));
    client_options.budget = std::make_shared<LlmBudget>(llm_config->budget);
    client_options.on_call = [&call_mutex, call_store, run_id = run.id](const LlmAttempt& a) {
      LlmCallRecord c;
      c.run_id = run_id, c.model = a.model, c.endpoint = a.endpoint, c.request = a.request, c.response = a.response;
      c.status = a.status, c.prompt_tokens = a.input_tokens, c.completion_tokens = a.output_tokens;
      c.cost_usd = a.cost_usd, c.latency_ms = a.latency_s * 1000, c.request_hash = a.request_hash;
      c.http_status = a.http_status, c.attempt = a.attempt, c.error = a.error, c.provider = a.provider;
      std::lock_guard lock(call_mutex);
      if (auto s = call_store->record_llm_call(c); !s) fmt::print(stderr, "kforge: {}\n", s.error().message);
    };
    auto client = LlmClient::create(*llm_config, client_options);
    if (!client) return report(client.error());
    llm = std::move(*client);
  }

  // Progress: one line per task updated in place on a terminal, plain log lines otherwise.
  const bool tty = isatty(STDERR_FILENO);
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

  // --trace: every compile and evaluation as a Chrome trace event. The search thread is row 0; the
  // compiles on request threads fill the first row free at their start, so no row overlaps itself.
  nlohmann::json trace_events = nlohmann::json::array();
  std::vector<double> row_ends;
  std::string current_task;
  if (!args.trace.empty())
    reporter.span = [&](const SearchSpan& s) {
      std::size_t row = 0;
      if (s.off_search_thread) {
        while (row < row_ends.size() && row_ends[row] > s.start_s) ++row;
        if (row == row_ends.size()) row_ends.push_back(0);
        row_ends[row++] = s.end_s;
      }
      trace_events.push_back({{"name", s.what + " " + s.origin}, {"cat", s.what}, {"ph", "X"}, {"pid", 1},
                              {"tid", row}, {"ts", s.start_s * 1e6}, {"dur", (s.end_s - s.start_s) * 1e6},
                              {"args", {{"task", current_task}}}});
    };

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  fmt::print(stderr, "search run {}: {} task(s) on {} ({}), {}, up to {} evaluations per task; results in {}\n", run.id,
             tasks->size(), target->device, args.backend,
             llm ? "LLM " + run.llm_models : std::string("offline (param mutation, crossover, variant switch)"),
             args.options.evaluations, args.db_path);

  std::vector<std::string> worker_command;
  for (std::istringstream words(args.worker); words;)
    if (std::string w; words >> w) worker_command.push_back(w);
  auto worker = std::make_shared<Worker>(worker_command);
  const double end = steady_seconds() + args.options.time_s;
  std::vector<TaskOutcome> outcomes;
  bool interrupted = false;
  for (std::size_t i = 0; i < tasks->size() && !interrupted; ++i) {
    const Task& task = (*tasks)[i];
    current_task = task.id();
    auto evaluator = Evaluator::create(task, *compiler, worker, target->gpu.get());
    if (!evaluator) return report(evaluator.error());
    PromptContext prompts;
    prompts.prompts_dir = context.resolved_prompts_dir();
    prompts.backend = args.backend;
    prompts.device = target->name;
    prompts.arch = args.backend == "cpu" ? cpu_arch() : target->arch;
    prompts.exemplar = category_exemplar(task, *all_tasks, args.backend, prompts.prompts_dir);
    prompts.retrieved = retrieved_for(*store, task, target->device);
    Search search(args.options, *store, run.id, target->device, prompts, llm.get(), reporter, &g_stop_requested);
    const double now = steady_seconds();
    const double deadline = now + (end - now) / static_cast<double>(tasks->size() - i);
    std::optional<std::string> resumed;
    if (auto it = saved.find(task.id()); it != saved.end()) resumed = it->second;
    auto outcome = search.run(*evaluator, resumed, deadline);
    if (tty) fmt::print(stderr, "\n");
    if (!outcome) return report(outcome.error());
    fmt::print(stderr, "{}: {}; best {:.2f}x ({})\n", task.id(), outcome->stop_reason, outcome->best_speedup,
               outcome->best_origin.empty() ? "no correct kernel" : outcome->best_origin);
    interrupted = outcome->stop_reason == "interrupted";
    outcomes.push_back(std::move(*outcome));
  }

  fmt::print("\n{:<22} {:>6} {:>5} {:>7} {:>9} {:>9}  {:<24} {}\n", "TASK", "EVALS", "OK", "FAILED", "BEST", "ROOFLINE",
             "KERNEL", "STOPPED");
  int exit_code = kExitOk;
  for (const auto& o : outcomes) {
    fmt::print("{:<22} {:>6} {:>5} {:>7} {:>9} {:>9}  {:<24} {}\n", o.task, o.evaluations, o.correct, o.failed,
               o.best_speedup > 0 ? fmt::format("{:.2f}x", o.best_speedup) : "-",
               o.best_roofline_pct > 0 ? fmt::format("{:.0f}%", o.best_roofline_pct) : "-",
               o.best_origin.empty() ? "-" : o.best_origin, o.stop_reason);
    if (o.best_key.empty()) exit_code = kExitKernelFailed;
  }
  double compile_s = 0, hidden_s = 0;
  for (const auto& o : outcomes) compile_s += o.compile_seconds, hidden_s += o.compile_seconds_hidden;
  fmt::print("compiles: {:.1f} s, {}\n", compile_s,
             llm ? fmt::format("{:.1f} s of it off the search thread, on the LLM requests' threads", hidden_s)
                 : std::string("all on the search thread (offline)"));
  if (!args.trace.empty()) {
    for (std::size_t row = 0; row <= row_ends.size(); ++row)
      trace_events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", row},
                              {"args", {{"name", row ? fmt::format("compiles on request threads ({})", row) : "search thread"}}}});
    std::ofstream out(args.trace);
    out << nlohmann::json{{"traceEvents", trace_events}}.dump() << "\n";
    if (!out) return report(make_error(ErrorKind::io, "--trace {}: cannot write", args.trace));
  }
  if (llm && llm->budget()) {
    const auto usage = llm->budget()->usage();
    fmt::print("LLM: {} calls, {} tokens, ${:.4f}\n", usage.calls, usage.tokens, usage.usd);
  }
  if (interrupted) {
    fmt::print("interrupted: continue with  kforge search --resume {}\n", run.id);
    return kExitKernelFailed;
  }
  if (auto s = store->end_run(run.id); !s) return report(s.error());
  fmt::print("run {} done; the winners are published in {} (kforge db best --db {}{})\n", run.id, args.db_path,
             args.db_path, args.backend == "cpu" ? "" : " --device " + target->device);
  return exit_code;
}

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
  add_db_option(*search, args->db_path);
  search->callback([&context, args] { context.run = [&context, args] { return run_search(context, *args); }; });
}

}  // namespace kforge::cli
