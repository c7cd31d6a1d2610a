// The search of one task, phase by phase: resume, seed, propose, compile, evaluate and re-verify,
// until a stop rule holds; offline in a loop, with an LLM in a pipeline of requests.
//
// The population, the RNG and the library are touched by the search thread only. With an LLM,
// prompts are built there and the calls run on their own threads (up to `concurrency` in flight),
// so the endpoint's latency overlaps the evaluation of what it already proposed. On its thread a
// reply is turned into a candidate (a diff that does not apply is sent back once) and compiled, so
// the compiles of several replies run at once (no more than the host has threads), beside the
// other requests; a request's slot is free once its reply is in, so the next request waits on the
// endpoint while the reply compiles. The code hash (or the compile error) comes back with the
// candidate, and the search thread only dedups and evaluates, one evaluation at a time: a single
// timing on the device. On the cpu backend the device is the host, and a compile beside a timed
// kernel would take its cores: there an evaluation waits for the compiles running and holds new
// ones off until it ends (DeviceGate); on a GPU they run beside it. The gate is the search's, not
// the evaluator's: the evaluator's calls are synchronous, and which work runs on which thread is
// the search's choice. Offline, everything runs on the search thread, in order.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <list>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/search.hpp"

namespace kforge {
namespace {

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

Compiled compile(const CandidateEvaluator& evaluator, DeviceGate& gate, const Candidate& candidate,
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

// The LLM requests in flight, each with the origin its kernel will carry, and what their threads
// share with the search thread. Destroyed before what those threads use, it waits for them.
struct LlmRequests {
  // Set once nothing more will be evaluated: a reply arriving then is not worth compiling.
  std::atomic<bool> draining{false};
  // Requests still waiting on the endpoint: a request's slot is free once its reply is in, so the
  // next request waits on the endpoint while that reply compiles.
  std::atomic<int> awaiting_reply{0};
  int failures_in_row = 0;
  std::list<std::pair<std::future<LlmOutcome>, std::string>> in_flight;

  ~LlmRequests() { drain(); }
  // Nothing more is evaluated: the requests in flight are waited for, and their replies dropped.
  void drain() {
    draining = true;
    for (auto& request : in_flight) request.first.wait();
  }
  // The first request to finish, unless a reply frees a slot for the next request first.
  std::optional<std::pair<LlmOutcome, std::string>> next(const std::function<bool()>& slot_free) {
    auto done = in_flight.end();
    while (done == in_flight.end() && !slot_free())
      for (auto it = in_flight.begin(); it != in_flight.end() && done == in_flight.end(); ++it)
        if (it->first.wait_for(std::chrono::milliseconds(it == in_flight.begin() ? 20 : 0)) ==
            std::future_status::ready)
          done = it;
    if (done == in_flight.end()) return std::nullopt;
    std::pair<LlmOutcome, std::string> finished{done->first.get(), done->second};
    in_flight.erase(done);
    return finished;
  }
};

// An evaluation started by the search thread, and what it came back with.
struct Evaluated {
  EvalResult result;
  double start_s = 0, end_s = 0;
};
struct InFlight {
  Proposal proposal;
  std::string origin;
  bool seed = false;
  std::future<Evaluated> done;
};

}  // namespace

// One task's search: the state its phases share, from the first seed to the saved state.
class Search::TaskRun {
 public:
  TaskRun(const Search& search, const CandidateEvaluator& evaluator, KernelConventions conventions, double deadline_s)
      : search_(search), options_(search.options_), evaluator_(evaluator), task_(evaluator.task()),
        conventions_(std::move(conventions)), deadline_s_(deadline_s), population_(options_.islands),
        rng_(options_.seed ^ std::stoull(content_hash(task_.id()).substr(0, 15), nullptr, 16)),
        capacity_(std::max(1, evaluator.capacity())),
        // a host kernel's compile and its timing would compete for the same cores; a pool's workers
        // run beside each other and beside the compiles, on core sets or machines of their own
        gate_(conventions_.runs_on_host() && capacity_ == 1, static_cast<int>(std::thread::hardware_concurrency())) {
    outcome_.task = task_.id();
  }

  Result<TaskOutcome> run(const std::optional<std::string>& resumed) {
    if (resumed) {
      auto done_before = resume(*resumed);
      if (!done_before) return done_before.error();
      if (*done_before) return outcome_;
    }
    if (auto s = evaluate_seeds(); !s) return s.error();
    if (auto s = search_.llm_ ? llm_pipeline() : offline_loop(); !s) return s.error();
    if (auto s = drain(); !s) return s.error();
    if (outcome_.stop_reason.empty()) outcome_.stop_reason = stop_reason();
    refresh_outcome();
    const std::string done = outcome_.stop_reason == "interrupted" ? "" : outcome_.stop_reason;
    if (auto s = search_.store_->save_search_state(search_.run_id_, task_.id(), save_state(done)); !s)
      return s.error();
    return outcome_;
  }

 private:
  // ---- resume: the population, the RNG and the counters a killed run saved ----

  // True when the task was done before the resume: there is nothing more to do.
  Result<bool> resume(const std::string& saved) {
    try {
      const nlohmann::json state = nlohmann::json::parse(saved);
      if (auto s = restore_population(state.at("population")); !s) return s.error();
      std::istringstream(state.at("rng").get<std::string>()) >> rng_;
      next_island_ = state.at("next_island"), duplicates_in_row_ = state.at("duplicates_in_row");
      since_gain_ = state.at("since_gain"), gain_mark_ = state.at("gain_mark"), proposals_ = state.at("proposals");
      outcome_.duplicates = state.at("duplicates"), outcome_.llm_failures = state.at("llm_failures");
      outcome_.compile_seconds = state.value("compile_seconds", 0.0);  // absent in states saved before
      outcome_.compile_seconds_hidden = state.value("compile_seconds_hidden", 0.0);
      seconds_before_ = state.at("seconds");
      // What was evaluated is known again, by its source and by its code.
      for (int i = 0; i < population_.size(); ++i) {
        const Program& p = population_.at(i);
        seen_.insert(content_hash(normalized_source(p.candidate.source)));
        new_code(compile_here(p.candidate, file_name_of(p.origin, p.operator_name == "seed")));
      }
      if (const std::string done = state.at("done"); !done.empty()) {
        refresh_outcome();
        outcome_.stop_reason = done + " (before the resume)";
        return true;
      }
      return false;
    } catch (const nlohmann::json::exception& e) {
      return make_error(ErrorKind::invalid_input, "{}: cannot resume: the saved state is malformed: {}", task_.id(),
                        e.what());
    }
  }

  // The saved programs, their sources read back from the library.
  Status restore_population(const nlohmann::json& saved) {
    auto restored = Population::from_json(saved, [&](const std::string& key) -> Result<Candidate> {
      auto kernel = search_.store_->find_kernel(key);
      if (!kernel) return kernel.error();
      if (!*kernel) return make_error(ErrorKind::invalid_input, "kernel {} is not in the library", key);
      return parse_candidate((*kernel)->source, (*kernel)->origin);
    });
    if (!restored) return make_error(ErrorKind::invalid_input, "{}: cannot resume: {}", task_.id(), restored.error().message);
    if (restored->islands() != options_.islands)
      return make_error(ErrorKind::invalid_input, "{}: cannot resume: the saved search has {} islands", task_.id(),
                        restored->islands());
    population_ = std::move(*restored);
    return {};
  }

  // What --resume needs to continue as if never stopped; `done`: why the task ended, or empty.
  std::string save_state(const std::string& done) const {
    nlohmann::json state = {{"population", population_.to_json()},
                            {"rng", rng_state(rng_)},
                            {"next_island", next_island_},
                            {"duplicates_in_row", duplicates_in_row_},
                            {"since_gain", since_gain_},
                            {"gain_mark", gain_mark_},
                            {"proposals", proposals_},
                            {"duplicates", outcome_.duplicates},
                            {"llm_failures", outcome_.llm_failures},
                            {"compile_seconds", outcome_.compile_seconds},
                            {"compile_seconds_hidden", outcome_.compile_seconds_hidden},
                            {"seconds", seconds_before_ + steady_seconds() - started_},
                            {"done", done}};
    return state.dump();
  }

  // ---- seed: generation 0, every seed of the backend this run has not evaluated yet, on every island ----

  Status evaluate_seeds() {
    for (const auto& path : task_.seed_paths) {
      const std::string name = std::filesystem::path(path).filename().string();
      if (!is_seed_for(options_.backend, name)) continue;
      auto source = read_file(path);
      if (!source) return source.error();
      auto candidate = parse_candidate(std::move(*source), path);
      if (!candidate) return candidate.error();
      Proposal proposal;
      proposal.operator_name = "seed";
      proposal.candidate = std::move(*candidate);
      const std::string key = content_hash(normalized_source(proposal.candidate.source));
      if (!seen_.insert(key).second || !compiled_anew(compile_here(proposal.candidate, name), name)) continue;
      if (stop_requested()) break;
      if (auto s = evaluate(std::move(proposal), name, true); !s) return s;
    }
    return drain();  // generation 0 whole before anything is proposed from it
  }

  // ---- propose offline: the param operators, each candidate compiled and evaluated here ----

  Status offline_loop() {
    while (stop_reason().empty()) {
      OfflineCounters counters{next_island_, duplicates_in_row_, outcome_.duplicates};
      auto proposal = propose_offline(population_, rng_, seen_, counters);
      next_island_ = counters.next_island, duplicates_in_row_ = counters.duplicates_in_row;
      outcome_.duplicates = counters.duplicates;
      if (!proposal && !in_flight_.empty()) {  // what is still being evaluated may give it parents
        if (auto s = absorb_next(); !s) return s;
        continue;
      }
      if (!proposal) {
        outcome_.stop_reason = population_.best() < 0
                                   ? "no correct kernel to start from (the offline search only tunes params)"
                                   : fmt::format("the param space around the population is exhausted ({} proposals "
                                                 "in a row were duplicates)",
                                                 kMaxDuplicatesInRowOffline);
        return {};
      }
      const std::string origin = new_origin(proposal->operator_name);
      if (!compiled_anew(compile_here(proposal->candidate, file_name_of(origin, false)), origin)) {
        skip_duplicate(origin, "compiles to the code of a kernel already evaluated");
        continue;
      }
      if (auto s = evaluate(std::move(*proposal), origin, false); !s) return s;
    }
    return {};
  }

  // ---- propose with an LLM: requests in flight while the search thread evaluates their replies ----

  Status llm_pipeline() {
    LlmRequests requests;
    while (true) {
      const std::string why = stop_reason();
      if (!why.empty()) requests.draining = true;
      // Up to `concurrency` requests wait on the endpoint, and as many more compile their reply.
      bool may_launch = why.empty();
      const std::function<bool()> slot_free = [&] {
        const int in_flight = static_cast<int>(requests.in_flight.size());
        return may_launch && requests.awaiting_reply < options_.concurrency && in_flight < 2 * options_.concurrency &&
               population_.size() + static_cast<int>(in_flight_.size()) + in_flight < options_.evaluations;
      };
      while (slot_free())
        if (!launch(requests)) may_launch = false;
      if (requests.in_flight.empty() && !in_flight_.empty()) {  // evaluations to come may give parents
        if (auto s = absorb_next(); !s) return s;
        continue;
      }
      if (requests.in_flight.empty()) {
        outcome_.stop_reason = why.empty() ? "no parent to propose from" : why;
        return {};
      }
      auto finished = requests.next(slot_free);
      if (!finished) continue;
      auto goes_on = take_reply(requests, std::move(finished->first), finished->second);
      if (!goes_on) return goes_on.error();
      if (!*goes_on) return {};
    }
  }

  // Asks for the next candidate on the next island in turn; false when there is nothing to ask.
  bool launch(LlmRequests& requests) {
    const int island = island_of_turn();
    const LlmOperator op = choose_llm_operator(population_, island, rng_);
    if (op.parent < 0) return false;
    auto messages = build_messages(op.kind, task_, search_.prompts_, population_, op.parent, op.other);
    if (!messages) {
      log(fmt::format("{}: cannot build the {} prompt: {}", task_.id(), op.kind, messages.error().message));
      return false;
    }
    Program& parent = population_.at(op.parent);
    ++parent.children;
    // How the reply's candidate will be filed.
    Proposal filed;
    filed.operator_name = "llm_" + op.kind;
    filed.parent_key = parent.key;
    filed.other_parent_key = op.other >= 0 ? population_.at(op.other).key : "";
    filed.island = island;
    const std::string origin = new_origin(filed.operator_name);
    auto future = std::async(std::launch::async, [this, &requests, messages = std::move(*messages), kind = op.kind,
                                                  source = parent.candidate.source, origin,
                                                  filed = std::move(filed)]() mutable {
      return ask(requests, std::move(messages), kind, source, origin, std::move(filed));
    });
    requests.in_flight.emplace_back(std::move(future), origin);
    ++requests.awaiting_reply;
    return true;
  }

  // On a request's thread: the reply's candidate, compiled there unless the option says otherwise,
  // the search is draining, or the candidate is a known duplicate.
  LlmOutcome ask(LlmRequests& requests, std::vector<LlmMessage> messages, const std::string& kind,
                 const std::string& parent_source, const std::string& origin, Proposal filed) {
    auto candidate = llm_candidate(*search_.llm_, std::move(messages), kind, parent_source, origin);
    --requests.awaiting_reply;
    if (!candidate) return {std::nullopt, candidate.error().message};
    filed.candidate = std::move(*candidate);
    LlmOutcome outcome{std::move(filed), ""};
    const Candidate& c = outcome.proposal->candidate;
    if (options_.compile_on_request_threads && !requests.draining &&
        !seen_before(content_hash(normalized_source(c.source))))
      outcome.compiled = compile(evaluator_, gate_, c, file_name_of(origin, false), true);
    return outcome;
  }

  // On the search thread: a finished request's candidate deduplicated and evaluated. False when the
  // search ends here: the LLM failed too many times in a row.
  Result<bool> take_reply(LlmRequests& requests, LlmOutcome result, const std::string& origin) {
    if (!result.proposal) {
      ++outcome_.llm_failures;
      log(fmt::format("{} {}: no kernel: {}", task_.id(), origin, clip(result.error, 200)));
      // An endpoint that keeps failing must not spin: give up after a run of failures.
      if (++requests.failures_in_row >= 3 * std::max(1, options_.concurrency) + 3) {
        requests.drain();
        outcome_.stop_reason =
            fmt::format("the LLM failed {} times in a row: {}", requests.failures_in_row, clip(result.error, 200));
        return false;
      }
      return true;
    }
    requests.failures_in_row = 0;
    bool duplicate = false;
    {
      std::lock_guard lock(seen_mutex_);
      duplicate = !seen_.insert(content_hash(normalized_source(result.proposal->candidate.source))).second;
    }
    if (duplicate) {
      if (result.compiled) account(*result.compiled, origin);  // a twin overtook it
      skip_duplicate(origin, "a duplicate of a kernel already evaluated");
      return true;
    }
    if (!stop_reason().empty()) {  // drain: nothing more is evaluated
      if (result.compiled) account(*result.compiled, origin);
      return true;
    }
    // Compiled on the request's thread, unless the option says otherwise or that thread skipped it.
    Compiled compiled = result.compiled ? std::move(*result.compiled)
                                        : compile_here(result.proposal->candidate, file_name_of(origin, false));
    if (!compiled_anew(compiled, origin)) {
      skip_duplicate(origin, "compiles to the code of a kernel already evaluated");
      return true;
    }
    duplicates_in_row_ = 0;
    if (auto s = evaluate(std::move(*result.proposal), origin, false); !s) {
      requests.drain();
      return s.error();
    }
    return true;
  }

  // ---- compile: the dedup by code ----

  // The file a candidate is compiled as: a seed keeps its name, others are named by their origin.
  std::string file_name_of(const std::string& origin, bool seed) const {
    return seed ? origin : origin + conventions_.extension;
  }
  Compiled compile_here(const Candidate& candidate, const std::string& file_name) {
    return compile(evaluator_, gate_, candidate, file_name, false);
  }
  // Whether the compiled code is new. A new source whose binary is one already evaluated (renamed
  // locals, a param the compiler folds away) is a duplicate too. A candidate that does not compile
  // has no hash, and is evaluated, to report its compile error.
  bool new_code(const Compiled& compiled) {
    return !compiled.code_hash || seen_code_.insert(*compiled.code_hash).second;
  }
  void account(const Compiled& compiled, const std::string& origin) {
    const double seconds = compiled.end_s - compiled.start_s;
    outcome_.compile_seconds += seconds;
    if (compiled.off_search_thread) outcome_.compile_seconds_hidden += seconds;
    span("compile", origin, compiled.start_s, compiled.end_s, compiled.off_search_thread);
  }
  // A candidate's compile, accounted for; then whether its code is new.
  bool compiled_anew(const Compiled& compiled, const std::string& origin) {
    account(compiled, origin);
    return new_code(compiled);
  }
  // Whether an LLM request thread may skip compiling a candidate: its source was seen before.
  bool seen_before(const std::string& hash) {
    std::lock_guard lock(seen_mutex_);
    return seen_.count(hash) > 0;
  }
  void skip_duplicate(const std::string& origin, const std::string& why) {
    ++duplicates_in_row_, ++outcome_.duplicates;
    log(fmt::format("{} {}: {}, skipped", task_.id(), origin, why));
  }

  // ---- evaluate and re-verify ----

  // Starts the evaluation of one candidate: alone (capacity 1), it runs here when absorbed, as if
  // called in place; beside others, on a thread of its own. Returns once fewer than `capacity_`
  // evaluations are in flight, having absorbed those that finished.
  Status evaluate(Proposal proposal, const std::string& origin, bool seed) {
    auto run = [this, candidate = proposal.candidate, file_name = file_name_of(origin, seed)] {
      DeviceGate::Pass pass(gate_, true);
      Evaluated e;
      e.start_s = steady_seconds();
      e.result = evaluator_.evaluate(candidate, file_name, options_.eval);
      e.end_s = steady_seconds();
      return e;
    };
    in_flight_.push_back({std::move(proposal), origin, seed,
                          std::async(capacity_ > 1 ? std::launch::async : std::launch::deferred, std::move(run))});
    while (static_cast<int>(in_flight_.size()) >= capacity_ || ready() != in_flight_.end())
      if (auto s = absorb_next(); !s) return s;
    return {};
  }

  // The first evaluation in flight that has finished (a deferred one never has).
  std::list<InFlight>::iterator ready() {
    return std::find_if(in_flight_.begin(), in_flight_.end(), [](const InFlight& f) {
      return f.done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    });
  }
  Status drain() {
    while (!in_flight_.empty())
      if (auto s = absorb_next(); !s) return s;
    return {};
  }

  // Waits for an evaluation in flight to finish (the oldest, when it runs only once asked for),
  // stores it with the search's state, and re-verifies a new best.
  Status absorb_next() {
    auto done = ready();
    while (done == in_flight_.end() && capacity_ > 1) {
      in_flight_.front().done.wait_for(std::chrono::milliseconds(20));
      done = ready();
    }
    if (done == in_flight_.end()) done = in_flight_.begin();
    InFlight finished = std::move(*done);
    in_flight_.erase(done);
    Evaluated evaluated = finished.done.get();
    Proposal& proposal = finished.proposal;
    const std::string& origin = finished.origin;
    const bool seed = finished.seed;
    const std::string file_name = file_name_of(origin, seed);
    span("evaluate", origin, evaluated.start_s, evaluated.end_s);
    const EvalResult& result = evaluated.result;
    if (result.worker.empty() && evaluator_.workers_lost()) {
      log(fmt::format("{} {}: not evaluated: every worker is lost", task_.id(), origin));
      return {};
    }
    Program p;
    p.candidate = std::move(proposal.candidate);
    p.parent_key = proposal.parent_key, p.other_parent_key = proposal.other_parent_key;
    p.operator_name = proposal.operator_name, p.origin = origin, p.island = proposal.island;
    const KernelRecord kernel = kernel_record(task_, options_.backend, p.candidate, origin, search_.run_id_,
                                              p.operator_name, p.parent_key);
    p.key = kernel.key;
    const int best_before = population_.best();
    const double best_fitness = best_before >= 0 ? population_.at(best_before).fitness : 0;
    const EvaluationRecord evaluation = absorb(p, result);
    const int index = population_.add(p, seed);
    if (auto s = record(kernel, evaluation); !s) return s;

    std::string line = fmt::format("{} #{} {} {}", task_.id(), population_.size(), origin, p.status);
    if (p.correct() && p.fitness > 0) line += fmt::format(" {:.3f}x", p.fitness);
    if (!p.correct()) line += ": " + clip(result.message, 160);
    if (p.correct() && p.fitness > best_fitness) {
      auto verdict = reverify(p, index, kernel, file_name, result, best_fitness);
      if (!verdict) return verdict.error();
      line += *verdict;
    }
    log(line);
    if (p.correct() && p.verified && p.fitness > gain_mark_ * kGain) {
      gain_mark_ = p.fitness;
      since_gain_ = 0;
    } else {
      ++since_gain_;
    }
    if (options_.migration_interval > 0 && population_.size() % options_.migration_interval == 0) population_.migrate();
    refresh_outcome();
    if (search_.reporter_.progress) search_.reporter_.progress(outcome_, options_.evaluations);
    return {};
  }

  // A new best counts only once it passes again in a fresh worker with a fresh seed. The program is
  // updated and stored again; returns what the log line says of it.
  Result<std::string> reverify(Program& p, int index, const KernelRecord& kernel, const std::string& file_name,
                               const EvalResult& first, double best_fitness) {
    const EvalResult result = timed("reverify", p.origin, [&] {
      return evaluator_.reverify(p.candidate, file_name, first, options_.eval);
    });
    if (result.worker.empty() && evaluator_.workers_lost()) return std::string(", not re-verified: every worker is lost");
    const EvaluationRecord evaluation = absorb(p, result);
    population_.update(index, p);
    if (auto s = record(kernel, evaluation); !s) return s.error();
    return !p.correct()              ? fmt::format(", failed re-verification: {}", clip(result.message, 160))
           : p.fitness > best_fitness ? fmt::format(", re-verified at {:.3f}x: new best", p.fitness)
                                      : fmt::format(", re-verified at {:.3f}x: not a new best after all", p.fitness);
  }

  // An evaluation or re-verification, alone on the device when the device is the host.
  template <class Run>
  EvalResult timed(const char* what, const std::string& origin, Run run) {
    DeviceGate::Pass pass(gate_, true);
    const double start = steady_seconds();
    EvalResult r = run();
    span(what, origin, start, steady_seconds());
    return r;
  }

  // The program's result from `r`; returns the evaluation as the library keeps it.
  EvaluationRecord absorb(Program& p, const EvalResult& r) const {
    p.status = to_string(r.status);
    p.feedback = clip(r.message + (r.status == EvalStatus::compile_error ? "\n" + r.log : ""), kFeedbackChars);
    p.fitness = r.status == EvalStatus::ok ? r.speedup : 0;
    p.verified = r.verified;
    p.usage = r.usage, p.code_bytes = r.code_bytes;
    EvaluationRecord e = evaluation_record(task_, search_.device_, r, search_.run_id_);
    p.median_us = geomean_median_us(e);
    p.roofline_pct = 0;
    int timed = 0;
    for (const auto& s : r.shapes)
      if (s.timing && s.roofline_pct > 0) p.roofline_pct += s.roofline_pct, ++timed;
    if (timed) p.roofline_pct /= timed;
    return e;
  }

  // The evaluation stored with the search's state, in one transaction.
  Status record(const KernelRecord& kernel, const EvaluationRecord& evaluation) {
    SearchStateRecord state{search_.run_id_, task_.id(), save_state("")};
    if (auto id = search_.store_->record(kernel, evaluation, &state); !id) return id.error();
    return {};
  }

  // ---- stop rules ----

  bool stop_requested() const { return (search_.stop_ && search_.stop_->load()) || evaluator_.workers_lost(); }

  // Why the task is done, or nothing.
  std::string stop_reason() const {
    if (stop_requested()) return "interrupted";
    if (population_.size() + static_cast<int>(in_flight_.size()) >= options_.evaluations)
      return fmt::format("evaluation budget spent ({} evaluations)", options_.evaluations);
    if (steady_seconds() >= deadline_s_) return "time limit reached";
    if (const int b = population_.best();
        options_.target_speedup > 0 && b >= 0 && population_.at(b).verified &&
        population_.at(b).fitness >= options_.target_speedup)
      return fmt::format("target speedup {}x reached", options_.target_speedup);
    LlmClient* llm = search_.llm_;
    if (llm && duplicates_in_row_ >= kMaxDuplicatesInRowLlm)
      return fmt::format("the LLM proposed {} kernels in a row that were already evaluated", duplicates_in_row_);
    if (since_gain_ >= options_.patience) return fmt::format("no gain of 0.5% in {} evaluations", options_.patience);
    if (llm && llm->budget())
      if (auto why = llm->budget()->exhausted()) return "LLM budget: " + *why;
    return "";
  }

  // ---- reporting ----

  void refresh_outcome() {
    outcome_.evaluations = population_.size();
    outcome_.correct = outcome_.failed = 0;
    for (int i = 0; i < population_.size(); ++i) (population_.at(i).correct() ? outcome_.correct : outcome_.failed)++;
    outcome_.seconds = seconds_before_ + steady_seconds() - started_;
    if (const int b = population_.best(); b >= 0) {
      const Program& best = population_.at(b);
      outcome_.best_speedup = best.fitness, outcome_.best_roofline_pct = best.roofline_pct;
      outcome_.best_median_us = best.median_us, outcome_.best_key = best.key, outcome_.best_origin = best.origin;
    }
    if (search_.llm_ && search_.llm_->budget()) outcome_.cost_usd = search_.llm_->budget()->usage().usd;
  }
  void log(const std::string& line) const {
    if (search_.reporter_.log) search_.reporter_.log(line);
  }
  void span(const char* what, const std::string& origin, double start_s, double end_s, bool off = false) const {
    if (search_.reporter_.span) search_.reporter_.span({what, origin, start_s, end_s, off});
  }

  int island_of_turn() { return next_island_++ % population_.islands(); }
  std::string new_origin(const std::string& op) { return fmt::format("{}-{}", op, ++proposals_); }

  const Search& search_;
  const SearchOptions& options_;
  const CandidateEvaluator& evaluator_;
  const Task& task_;
  const KernelConventions conventions_;  // the backend's: file extension, where kernels run
  const double started_ = steady_seconds();
  const double deadline_s_;
  Population population_;
  std::mt19937_64 rng_;
  TaskOutcome outcome_;
  int next_island_ = 0, duplicates_in_row_ = 0, since_gain_ = 0, proposals_ = 0;
  double gain_mark_ = 0;  // the fitness the next gain is measured from
  double seconds_before_ = 0;  // spent on the task before a resume
  // Content hashes of normalised sources, evaluated or in flight. Written by the search thread
  // alone; LLM request threads read it, under seen_mutex_, to skip compiling a known duplicate.
  std::set<std::string> seen_;
  std::mutex seen_mutex_;
  std::set<std::string> seen_code_;  // code hashes of the compiled kernels evaluated
  // Evaluations started and not yet absorbed, oldest first: at most capacity_ (the evaluator's).
  std::list<InFlight> in_flight_;
  const int capacity_;
  DeviceGate gate_;
};

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
               LlmClient* llm, SearchReporter reporter, const std::atomic<bool>* stop)
    : options_(std::move(options)), store_(&store), run_id_(std::move(run_id)), device_(std::move(device)),
      prompts_(std::move(prompts)), llm_(llm), reporter_(std::move(reporter)), stop_(stop) {}

Result<TaskOutcome> Search::run(const CandidateEvaluator& evaluator, const std::optional<std::string>& resumed,
                                double deadline_s) {
  auto conventions = kernel_conventions(options_.backend);
  if (!conventions) return conventions.error();
  return TaskRun(*this, evaluator, std::move(*conventions), deadline_s).run(resumed);
}

Result<TaskOutcome> Search::run(const Evaluator& evaluator, const std::optional<std::string>& resumed,
                                double deadline_s) {
  const EvaluatorAdapter adapter(evaluator);
  return run(adapter, resumed, deadline_s);
}

Status save_search_options(KernelStore& store, const std::string& run_id, const SearchRunOptions& saved) {
  const nlohmann::json j = {{"options", saved.options.to_json()}, {"suite", saved.suite}, {"tasks", saved.tasks}};
  return store.save_search_state(run_id, "", j.dump());
}

Result<SearchRunOptions> saved_search_options(const KernelStore& store, const std::string& run_id) {
  auto states = store.search_states(run_id);
  if (!states) return states.error();
  const auto it = states->find("");
  if (it == states->end()) return make_error(ErrorKind::invalid_input, "run {} saved no options", run_id);
  try {
    const auto j = nlohmann::json::parse(it->second);
    return SearchRunOptions{SearchOptions::from_json(j.at("options")), j.at("suite").get<std::string>(),
                            j.at("tasks").get<std::string>()};
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::invalid_input, "run {}: malformed options: {}", run_id, e.what());
  }
}

}  // namespace kforge
