// The search loop of one task: propose, evaluate, record, select, until a termination condition.
//
// The population, the RNG and the library are touched by this thread only. With an LLM, prompts
// are built here and the calls run on their own threads (up to `concurrency` in flight), so the
// endpoint's latency overlaps the evaluation of what it already proposed. On its thread a reply is
// turned into a candidate (a diff that does not apply is sent back once) and compiled, so the
// compiles of several replies run at once (no more than the host has threads), beside the other
// requests; a request's slot is free once its reply is in, so the next request waits on the
// endpoint while the reply compiles. The code hash (or the compile error) comes back with the
// candidate, and this thread only dedups and evaluates, one evaluation at a time: a single timing
// on the device. On the cpu backend the device is the host, and a compile beside a timed kernel
// would take its cores: there an evaluation waits for the compiles running and holds new ones off
// until it ends (DeviceGate); on a GPU they run beside it. The gate is the search's, not the
// evaluator's: the evaluator's calls are synchronous, and which work runs on which thread is the
// search's choice. Offline, everything runs here, in order.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <list>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/search.hpp"

namespace kforge {
namespace {

std::atomic<bool> g_stop{false};

constexpr std::size_t kFeedbackChars = 4000;
constexpr double kGain = 1.005;  // what counts as progress for the patience rule

std::string clip(const std::string& text, std::size_t n) { return text.size() <= n ? text : text.substr(0, n); }

std::string rng_state(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

// Where the device is the host (cpu), an evaluation runs alone: it waits for the compiles under
// way, and new compiles wait while it waits or runs (with a shared_mutex preferring readers, as
// glibc's does, the replies arriving would keep it waiting). Everywhere, at most `compile_slots`
// compiles run at once: more than the host has threads only slows each one down.
class DeviceGate {
 public:
  DeviceGate(bool device_is_host, int compile_slots)
      : device_is_host_(device_is_host), compile_slots_(std::max(1, compile_slots)) {}

  // Held for the span of one compile or one evaluation.
  class [[nodiscard]] Pass {
   public:
    Pass(DeviceGate& gate, bool evaluation) : gate_(gate), evaluation_(evaluation) { gate_.enter(evaluation_); }
    ~Pass() { gate_.leave(evaluation_); }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

   private:
    DeviceGate& gate_;
    const bool evaluation_;
  };

 private:
  void enter(bool evaluation) {
    std::unique_lock lock(mutex_);
    if (!evaluation) {
      changed_.wait(lock, [&] {
        return compiling_ < compile_slots_ && !(device_is_host_ && (evaluating_ || evaluations_waiting_ > 0));
      });
      ++compiling_;
    } else if (device_is_host_) {
      ++evaluations_waiting_;
      changed_.wait(lock, [&] { return compiling_ == 0; });
      --evaluations_waiting_;
      evaluating_ = true;
    }
  }
  void leave(bool evaluation) {
    {
      std::lock_guard lock(mutex_);
      if (evaluation)
        evaluating_ = false;
      else
        --compiling_;
    }
    changed_.notify_all();
  }

  const bool device_is_host_;
  const int compile_slots_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int compiling_ = 0, evaluations_waiting_ = 0;
  bool evaluating_ = false;
};

// A candidate compiled as the evaluator compiles it: its code hash, or why it has none.
struct Compiled {
  Result<std::string> code_hash;
  double start_s = 0, end_s = 0;
  bool off_search_thread = false;
};

Compiled compile(const Evaluator& evaluator, DeviceGate& gate, const Candidate& candidate,
                 const std::string& file_name, bool off_search_thread) {
  DeviceGate::Pass pass(gate, false);
  const double start = steady_seconds();
  auto hash = evaluator.code_hash(candidate, file_name);
  return {std::move(hash), start, steady_seconds(), off_search_thread};
}

// What an LLM request came back with: a candidate, or why there is none; and the candidate
// compiled, unless it was not compiled on the request's thread.
struct LlmOutcome {
  std::optional<Proposal> proposal;
  std::string error;
  std::optional<Compiled> compiled = {};
};

}  // namespace

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Search::request_stop() { g_stop = true; }

nlohmann::json SearchOptions::to_json() const {
  return {{"backend", backend},
          {"evaluations", evaluations},
          {"time_s", std::isfinite(time_s) ? time_s : -1.0},
          {"target_speedup", target_speedup},
          {"patience", patience},
          {"islands", islands},
          {"migration_interval", migration_interval},
          {"seed", seed},
          {"concurrency", concurrency},
          {"compile_on_request_threads", compile_on_request_threads},
          {"eval_timeout_s", eval.timeout_s}};
}

SearchOptions SearchOptions::from_json(const nlohmann::json& j) {
  SearchOptions o;
  o.backend = j.value("backend", o.backend);
  o.evaluations = j.value("evaluations", o.evaluations);
  const double t = j.value("time_s", -1.0);
  o.time_s = t < 0 ? std::numeric_limits<double>::infinity() : t;
  o.target_speedup = j.value("target_speedup", o.target_speedup);
  o.patience = j.value("patience", o.patience);
  o.islands = j.value("islands", o.islands);
  o.migration_interval = j.value("migration_interval", o.migration_interval);
  o.seed = j.value("seed", o.seed);
  o.concurrency = j.value("concurrency", o.concurrency);
  o.compile_on_request_threads = j.value("compile_on_request_threads", o.compile_on_request_threads);
  o.eval.timeout_s = j.value("eval_timeout_s", o.eval.timeout_s);
  return o;
}

Search::Search(SearchOptions options, KernelStore& store, std::string run_id, std::string device, PromptContext prompts,
               LlmClient* llm, SearchReporter reporter)
    : options_(std::move(options)), store_(&store), run_id_(std::move(run_id)), device_(std::move(device)),
      prompts_(std::move(prompts)), llm_(llm), reporter_(std::move(reporter)) {}

Result<TaskOutcome> Search::run(const Evaluator& evaluator, const std::optional<std::string>& resumed,
                                double deadline_s) {
  const Task& task = evaluator.task();
  const double started = steady_seconds();
  Population population(options_.islands);
  std::mt19937_64 rng(options_.seed ^ std::stoull(content_hash(task.id()).substr(0, 15), nullptr, 16));
  TaskOutcome outcome;
  outcome.task = task.id();
  int next_island = 0, duplicates_in_row = 0, since_gain = 0, proposals = 0;
  double gain_mark = 0;  // the fitness the next gain is measured from
  double seconds_before = 0;
  // Content hashes of normalised sources, evaluated or in flight. Written by this thread alone;
  // LLM request threads read it, under seen_mutex, to skip compiling a known duplicate.
  std::set<std::string> seen;
  std::mutex seen_mutex;
  DeviceGate gate(options_.backend == "cpu", static_cast<int>(std::thread::hardware_concurrency()));
  // The file a candidate is compiled as: a seed keeps its name, others are named by their origin.
  auto file_name_of = [&](const std::string& origin, bool seed) {
    return seed ? origin : origin + (options_.backend == "cpu" ? ".cpp" : options_.backend == "cuda" ? ".cu" : ".hip");
  };
  // Code hashes of the compiled kernels evaluated: a new source whose binary is one of these
  // (renamed locals, a param the compiler folds away) is a duplicate too. A candidate that does not
  // compile has no hash, and is evaluated, to report its compile error.
  std::set<std::string> seen_code;
  auto new_code = [&](const Compiled& compiled) {
    return !compiled.code_hash || seen_code.insert(*compiled.code_hash).second;
  };
  auto compile_here = [&](const Candidate& candidate, const std::string& file_name) {
    return compile(evaluator, gate, candidate, file_name, false);
  };

  auto log = [&](const std::string& line) {
    if (reporter_.log) reporter_.log(line);
  };
  auto span = [&](const char* what, const std::string& origin, double start_s, double end_s, bool off = false) {
    if (reporter_.span) reporter_.span({what, origin, start_s, end_s, off});
  };
  auto account = [&](const Compiled& compiled, const std::string& origin) {
    const double seconds = compiled.end_s - compiled.start_s;
    outcome.compile_seconds += seconds;
    if (compiled.off_search_thread) outcome.compile_seconds_hidden += seconds;
    span("compile", origin, compiled.start_s, compiled.end_s, compiled.off_search_thread);
  };
  // A candidate's compile, accounted for; then whether its code is new.
  auto compiled_anew = [&](const Compiled& compiled, const std::string& origin) {
    account(compiled, origin);
    return new_code(compiled);
  };
  auto save_state = [&](const std::string& done) {
    nlohmann::json state = {{"population", population.to_json()},
                            {"rng", rng_state(rng)},
                            {"next_island", next_island},
                            {"duplicates_in_row", duplicates_in_row},
                            {"since_gain", since_gain},
                            {"gain_mark", gain_mark},
                            {"proposals", proposals},
                            {"duplicates", outcome.duplicates},
                            {"llm_failures", outcome.llm_failures},
                            {"compile_seconds", outcome.compile_seconds},
                            {"compile_seconds_hidden", outcome.compile_seconds_hidden},
                            {"seconds", seconds_before + steady_seconds() - started},
                            {"done", done}};
    return state.dump();
  };
  auto refresh_outcome = [&] {
    outcome.evaluations = population.size();
    outcome.correct = outcome.failed = 0;
    for (int i = 0; i < population.size(); ++i) (population.at(i).correct() ? outcome.correct : outcome.failed)++;
    outcome.seconds = seconds_before + steady_seconds() - started;
    if (const int b = population.best(); b >= 0) {
      const Program& best = population.at(b);
      outcome.best_speedup = best.fitness, outcome.best_roofline_pct = best.roofline_pct;
      outcome.best_median_us = best.median_us, outcome.best_key = best.key, outcome.best_origin = best.origin;
    }
    if (llm_ && llm_->budget()) outcome.cost_usd = llm_->budget()->usage().usd;
  };

  if (resumed) {
    try {
      const nlohmann::json state = nlohmann::json::parse(*resumed);
      auto restored = Population::from_json(state.at("population"), [&](const std::string& key) -> Result<Candidate> {
        auto kernel = store_->find_kernel(key);
        if (!kernel) return kernel.error();
        if (!*kernel) return make_error(ErrorKind::invalid_input, "kernel {} is not in the library", key);
        return parse_candidate((*kernel)->source, (*kernel)->origin);
      });
      if (!restored) return make_error(ErrorKind::invalid_input, "{}: cannot resume: {}", task.id(), restored.error().message);
      if (restored->islands() != options_.islands)
        return make_error(ErrorKind::invalid_input, "{}: cannot resume: the saved search has {} islands", task.id(),
                          restored->islands());
      population = std::move(*restored);
      std::istringstream(state.at("rng").get<std::string>()) >> rng;
      next_island = state.at("next_island"), duplicates_in_row = state.at("duplicates_in_row");
      since_gain = state.at("since_gain"), gain_mark = state.at("gain_mark"), proposals = state.at("proposals");
      outcome.duplicates = state.at("duplicates"), outcome.llm_failures = state.at("llm_failures");
      outcome.compile_seconds = state.value("compile_seconds", 0.0);  // absent in states saved before
      outcome.compile_seconds_hidden = state.value("compile_seconds_hidden", 0.0);
      seconds_before = state.at("seconds");
      for (int i = 0; i < population.size(); ++i) {
        const Program& p = population.at(i);
        seen.insert(content_hash(normalized_source(p.candidate.source)));
        new_code(compile_here(p.candidate, file_name_of(p.origin, p.operator_name == "seed")));
      }
      if (const std::string done = state.at("done"); !done.empty()) {
        refresh_outcome();
        outcome.stop_reason = done + " (before the resume)";
        return outcome;
      }
    } catch (const nlohmann::json::exception& e) {
      return make_error(ErrorKind::invalid_input, "{}: cannot resume: the saved state is malformed: {}", task.id(),
                        e.what());
    }
  }

  // Evaluates one candidate, stores it with the search's state, re-verifies a new best.
  auto evaluate = [&](Proposal proposal, const std::string& origin, bool seed) -> Status {
    const std::string file_name = file_name_of(origin, seed);
    auto timed = [&](const char* what, auto run) {
      DeviceGate::Pass pass(gate, true);
      const double start = steady_seconds();
      EvalResult r = run();
      span(what, origin, start, steady_seconds());
      return r;
    };
    EvalResult result =
        timed("evaluate", [&] { return evaluator.evaluate(proposal.candidate, file_name, options_.eval); });
    Program p;
    p.candidate = std::move(proposal.candidate);
    p.parent_key = proposal.parent_key, p.other_parent_key = proposal.other_parent_key;
    p.operator_name = proposal.operator_name, p.origin = origin, p.island = proposal.island;
    KernelRecord kernel = kernel_record(task, options_.backend, p.candidate, origin, run_id_, p.operator_name,
                                        p.parent_key);
    p.key = kernel.key;
    auto absorb = [&](const EvalResult& r) {
      p.status = to_string(r.status);
      p.feedback = clip(r.message + (r.status == EvalStatus::compile_error ? "\n" + r.log : ""), kFeedbackChars);
      p.fitness = r.status == EvalStatus::ok ? r.speedup : 0;
      p.verified = r.verified;
      p.usage = r.usage, p.code_bytes = r.code_bytes;
      const EvaluationRecord e = evaluation_record(task, device_, r, run_id_);
      p.median_us = geomean_median_us(e);
      p.roofline_pct = 0;
      int timed = 0;
      for (const auto& s : r.shapes)
        if (s.timing && s.roofline_pct > 0) p.roofline_pct += s.roofline_pct, ++timed;
      if (timed) p.roofline_pct /= timed;
      return e;
    };
    const int best_before = population.best();
    const double best_fitness = best_before >= 0 ? population.at(best_before).fitness : 0;
    EvaluationRecord evaluation = absorb(result);
    const int index = population.add(p, seed);
    SearchStateRecord state{run_id_, task.id(), save_state("")};
    if (auto id = store_->record(kernel, evaluation, &state); !id) return id.error();

    std::string line = fmt::format("{} #{} {} {}", task.id(), population.size(), origin, p.status);
    if (p.correct() && p.fitness > 0) line += fmt::format(" {:.3f}x", p.fitness);
    if (!p.correct()) line += ": " + clip(result.message, 160);
    if (p.correct() && p.fitness > best_fitness) {
      // A new best counts only once it passes again in a fresh worker with a fresh seed.
      result = timed("reverify", [&] { return evaluator.reverify(p.candidate, file_name, result, options_.eval); });
      evaluation = absorb(result);
      population.update(index, p);
      state.state = save_state("");
      if (auto id = store_->record(kernel, evaluation, &state); !id) return id.error();
      line += !p.correct()              ? fmt::format(", failed re-verification: {}", clip(result.message, 160))
              : p.fitness > best_fitness ? fmt::format(", re-verified at {:.3f}x: new best", p.fitness)
                                         : fmt::format(", re-verified at {:.3f}x: not a new best after all", p.fitness);
    }
    log(line);
    if (p.correct() && p.verified && p.fitness > gain_mark * kGain) {
      gain_mark = p.fitness;
      since_gain = 0;
    } else {
      ++since_gain;
    }
    if (options_.migration_interval > 0 && population.size() % options_.migration_interval == 0) population.migrate();
    refresh_outcome();
    if (reporter_.progress) reporter_.progress(outcome, options_.evaluations);
    return {};
  };

  // Why the task is done, or nothing.
  auto stop_reason = [&]() -> std::string {
    if (g_stop) return "interrupted";
    if (population.size() >= options_.evaluations)
      return fmt::format("evaluation budget spent ({} evaluations)", options_.evaluations);
    if (steady_seconds() >= deadline_s) return "time limit reached";
    if (const int b = population.best();
        options_.target_speedup > 0 && b >= 0 && population.at(b).verified &&
        population.at(b).fitness >= options_.target_speedup)
      return fmt::format("target speedup {}x reached", options_.target_speedup);
    if (llm_ && duplicates_in_row >= kMaxDuplicatesInRowLlm)
      return fmt::format("the LLM proposed {} kernels in a row that were already evaluated", duplicates_in_row);
    if (since_gain >= options_.patience)
      return fmt::format("no gain of 0.5% in {} evaluations", options_.patience);
    if (llm_ && llm_->budget())
      if (auto why = llm_->budget()->exhausted()) return "LLM budget: " + *why;
    return "";
  };

  // Generation 0: every seed of the backend this run has not evaluated yet, on every island.
  for (const auto& path : task.seed_paths) {
    const std::string name = std::filesystem::path(path).filename().string();
    if (!is_seed_for(options_.backend, name)) continue;
    auto source = read_file(path);
    if (!source) return source.error();
    auto candidate = parse_candidate(std::move(*source), path);
    if (!candidate) return candidate.error();
    Proposal seed;
    seed.operator_name = "seed";
    seed.candidate = std::move(*candidate);
    const std::string key = content_hash(normalized_source(seed.candidate.source));
    if (!seen.insert(key).second || !compiled_anew(compile_here(seed.candidate, name), name)) continue;
    if (g_stop) break;
    if (auto s = evaluate(std::move(seed), name, true); !s) return s.error();
  }

  auto island_of_turn = [&] { return next_island++ % population.islands(); };
  auto new_origin = [&](const std::string& op) { return fmt::format("{}-{}", op, ++proposals); };

  if (!llm_) {
    for (std::string why; (why = stop_reason()).empty();) {
      OfflineCounters counters{next_island, duplicates_in_row, outcome.duplicates};
      auto proposal = propose_offline(population, rng, seen, counters);
      next_island = counters.next_island, duplicates_in_row = counters.duplicates_in_row;
      outcome.duplicates = counters.duplicates;
      if (!proposal) {
        outcome.stop_reason = population.best() < 0
                                  ? "no correct kernel to start from (the offline search only tunes params)"
                                  : fmt::format("the param space around the population is exhausted ({} proposals in "
                                                "a row were duplicates)",
                                                kMaxDuplicatesInRowOffline);
        break;
      }
      const std::string origin = new_origin(proposal->operator_name);
      if (!compiled_anew(compile_here(proposal->candidate, file_name_of(origin, false)), origin)) {
        ++duplicates_in_row, ++outcome.duplicates;
        log(fmt::format("{} {}: compiles to the code of a kernel already evaluated, skipped", task.id(), origin));
        continue;
      }
      if (auto s = evaluate(std::move(*proposal), origin, false); !s) return s.error();
    }
  } else {
    // Set once nothing more will be evaluated: a reply arriving then is not worth compiling.
    std::atomic<bool> draining{false};
    // Requests still waiting on the endpoint: a request's slot is free once its reply is in, so the
    // next request waits on the endpoint while that reply compiles.
    std::atomic<int> awaiting_reply{0};
    auto seen_before = [&](const std::string& hash) {
      std::lock_guard lock(seen_mutex);
      return seen.count(hash) > 0;
    };
    // LLM requests in flight, each with the origin its kernel will carry. Declared after what
    // their threads use: the futures of std::async wait for them when destroyed.
    std::list<std::pair<std::future<LlmOutcome>, std::string>> in_flight;
    auto launch = [&]() -> bool {
      const int island = island_of_turn();
      const LlmOperator op = choose_llm_operator(population, island, rng);
      if (op.parent < 0) return false;
      auto messages = build_messages(op.kind, task, prompts_, population, op.parent, op.other);
      if (!messages) {
        log(fmt::format("{}: cannot build the {} prompt: {}", task.id(), op.kind, messages.error().message));
        return false;
      }
      Program& p = population.at(op.parent);
      ++p.children;
      const std::string origin = new_origin("llm_" + op.kind);
      auto future = std::async(std::launch::async, [&, llm = llm_, msgs = std::move(*messages), kind = op.kind,
                                                    source = p.candidate.source, origin,
                                                    file_name = file_name_of(origin, false), key = p.key,
                                                    other_key = op.other >= 0 ? population.at(op.other).key : "",
                                                    island] {
        auto candidate = llm_candidate(*llm, msgs, kind, source, origin);
        --awaiting_reply;
        if (!candidate) return LlmOutcome{std::nullopt, candidate.error().message};
        LlmOutcome o{Proposal{std::move(*candidate), "llm_" + kind, key, other_key, island}, ""};
        const Candidate& c = o.proposal->candidate;
        if (options_.compile_on_request_threads && !draining &&
            !seen_before(content_hash(normalized_source(c.source))))
          o.compiled = compile(evaluator, gate, c, file_name, true);
        return o;
      });
      in_flight.emplace_back(std::move(future), origin);
      ++awaiting_reply;
      return true;
    };
    int failures_in_row = 0;
    while (true) {
      std::string why = stop_reason();
      if (!why.empty()) draining = true;
      // Up to `concurrency` requests wait on the endpoint, and as many more compile their reply.
      bool may_launch = why.empty();
      auto slot_free = [&] {
        const int requests = static_cast<int>(in_flight.size());
        return may_launch && awaiting_reply < options_.concurrency && requests < 2 * options_.concurrency &&
               population.size() + requests < options_.evaluations;
      };
      while (slot_free())
        if (!launch()) may_launch = false;
      if (in_flight.empty()) {
        outcome.stop_reason = why.empty() ? "no parent to propose from" : why;
        break;
      }
      // The first request to finish, unless a reply frees a slot for the next request first.
      auto done = in_flight.end();
      while (done == in_flight.end() && !slot_free())
        for (auto it = in_flight.begin(); it != in_flight.end() && done == in_flight.end(); ++it)
          if (it->first.wait_for(std::chrono::milliseconds(it == in_flight.begin() ? 20 : 0)) ==
              std::future_status::ready)
            done = it;
      if (done == in_flight.end()) continue;
      LlmOutcome result = done->first.get();
      const std::string origin = done->second;
      in_flight.erase(done);
      if (!result.proposal) {
        ++outcome.llm_failures;
        log(fmt::format("{} {}: no kernel: {}", task.id(), origin, clip(result.error, 200)));
        // An endpoint that keeps failing must not spin: give up after a run of failures.
        if (++failures_in_row >= 3 * std::max(1, options_.concurrency) + 3) {
          draining = true;
          for (auto& f : in_flight) f.first.wait();
          outcome.stop_reason = fmt::format("the LLM failed {} times in a row: {}", failures_in_row, clip(result.error, 200));
          break;
        }
        continue;
      }
      failures_in_row = 0;
      bool duplicate = false;
      {
        std::lock_guard lock(seen_mutex);
        duplicate = !seen.insert(content_hash(normalized_source(result.proposal->candidate.source))).second;
      }
      if (duplicate) {
        if (result.compiled) account(*result.compiled, origin);  // a twin overtook it
        ++duplicates_in_row, ++outcome.duplicates;
        log(fmt::format("{} {}: a duplicate of a kernel already evaluated, skipped", task.id(), origin));
        continue;
      }
      if (!stop_reason().empty()) {  // drain: nothing more is evaluated
        if (result.compiled) account(*result.compiled, origin);
        continue;
      }
      // Compiled on the request's thread, unless the option says otherwise or that thread skipped it.
      Compiled compiled = result.compiled ? std::move(*result.compiled)
                                          : compile_here(result.proposal->candidate, file_name_of(origin, false));
      if (!compiled_anew(compiled, origin)) {
        ++duplicates_in_row, ++outcome.duplicates;
        log(fmt::format("{} {}: compiles to the code of a kernel already evaluated, skipped", task.id(), origin));
        continue;
      }
      duplicates_in_row = 0;
      if (auto s = evaluate(std::move(*result.proposal), origin, false); !s) {
        draining = true;
        for (auto& f : in_flight) f.first.wait();
        return s.error();
      }
    }
  }
  if (outcome.stop_reason.empty()) outcome.stop_reason = stop_reason();
  refresh_outcome();
  if (auto s = store_->save_search_state(run_id_, task.id(), save_state(outcome.stop_reason == "interrupted" ? "" : outcome.stop_reason)); !s)
    return s.error();
  return outcome;
}

}  // namespace kforge
