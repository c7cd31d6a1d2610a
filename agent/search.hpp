// agent/search: the evolutionary search behind `kforge search`.
//
// For each task, a population of kernels lives on islands; each island keeps a MAP-Elites grid
// (one elite per cell of code family x primary param, x register pressure for a GPU kernel whose
// compiler reported it) from which parents are drawn with
// ShinkaEvolve's weight, sigmoid(10·z)/(1 + children), where z is the parent's log speedup
// standardised over the island. An operator turns a parent into a candidate: with an LLM, a full
// rewrite, a SEARCH/REPLACE diff, a crossover of two parents, or a fix of a failed kernel; offline,
// a mutation or crossover of the `@kforge param` values, or a switch to another seed variant
// (operators.cpp holds them all, with their probabilities). Every candidate not seen before is
// evaluated (by the evaluator, or by whatever answers the CandidateEvaluator interface: a
// benchmark answers from measured results), stored in the kernel library with the search's state
// in the same transaction (so kill -9 loses nothing finished and `--resume` continues with the
// same RNG state), and a new best counts only once re-verified.
// With an LLM, the calls and the compiles of what they propose run on the requests' threads while
// the search thread evaluates, one candidate at a time (on the cpu, never beside a compile). An
// evaluator over a pool of workers (agent/worker_pool.hpp) takes as many evaluations at once as
// it has workers: they run on threads of their own while the search proposes and compiles the
// next candidates, and the population learns each result when the search thread absorbs it.
// Offline with a given seed the same evaluation results lead to the same candidates in the same
// order; timings are noisy, so two live runs agree only as long as the ranking they measure does.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent.hpp"
#include "evaluator/evaluator.hpp"
#include "kernels_db/kernels_db.hpp"

namespace kforge {

// ---- programs and the population ---------------------------------------------------------------

struct Program {
  std::string key;         // kernel_key(): the library's key of its source and params
  std::string parent_key;  // empty for seeds
  std::string other_parent_key;  // the second parent of a crossover
  std::string operator_name;     // seed, param_mutation, param_crossover, variant_switch, llm_rewrite, ...
  std::string origin;            // a seed's file name, else "<operator>-<n>"
  Candidate candidate;
  int island = 0;
  std::string status;    // the evaluation's status: ok, incorrect, compile_error, ...
  std::string feedback;  // why it failed (first mismatch, compiler error), capped
  double fitness = 0;    // geometric-mean speedup over the bench shapes vs the baseline; 0 unless ok
  double median_us = 0, roofline_pct = 0;
  bool verified = false;  // re-verified in a fresh worker (done for every new best)
  int children = 0;       // candidates proposed from it
  ResourceUsage usage;          // what the compiler reported (GPU registers ...; -1 unknown)
  std::int64_t code_bytes = 0;  // its binary's size; 0 when it did not compile
  bool correct() const { return status == "ok"; }
};

// The search's random draws, from its one RNG, so that a seed fixes every choice: uniform in
// [0, 1), and an index in [0, n).
double draw_uniform(std::mt19937_64& rng);
int draw_index(std::mt19937_64& rng, std::size_t n);

// The source with a param's value set to `value` in its `// @kforge param:` line.
std::string with_param(const std::string& source, const std::string& name, std::int64_t value);
// The source without comments (`@kforge` lines kept) and with whitespace runs collapsed: two
// candidates with the same normalised source are the same candidate.
std::string normalized_source(const std::string& source);
// The code apart from its param values: kernels differing only in params share a family.
std::string family_hash(const Candidate& candidate);

class Population {
 public:
  static constexpr int kBins = 8;  // per descriptor of the MAP-Elites grid

  explicit Population(int islands = 4);

  // Adds an evaluated program to its island's members, and to the island's grid if it beats the
  // cell's elite; a seed (`everywhere`) joins every island. Returns its index.
  int add(Program program, bool everywhere = false);
  // After a re-verification changed a program's result: its cells are recomputed.
  void update(int index, const Program& program);

  // A parent for `island`: p 0.2 one of the best 10 overall, p 0.1 any correct member, else an
  // elite drawn by weight sigmoid(10·z)/(1 + children). -1 when the island has no correct program.
  int select_parent(int island, std::mt19937_64& rng) const;
  // A second correct program for a crossover, other than `parent`; -1 if none.
  int select_other(int island, int parent, std::mt19937_64& rng) const;
  bool has_correct(int island) const;
  // The island's newest failed program (what fix mode repairs); -1 if none.
  int last_failure(int island) const;
  // Ring migration: each island's best elite is offered to the next island's grid.
  void migrate();

  int best() const;                           // the fittest correct program, -1 if none
  std::vector<int> top(int n) const;          // the n fittest correct programs, best first
  std::vector<int> diverse(int n, int parent) const;  // elites of cells other than the parent's
  std::vector<int> children_of(const std::string& key) const;  // in the order they were added

  const Program& at(int index) const { return programs_.at(index); }
  Program& at(int index) { return programs_.at(index); }
  // family_hash of the program's candidate, computed once when it was added or updated: the
  // offline operator asks for every program's family on every proposal.
  const std::string& family(int index) const { return families_.at(index); }
  int size() const { return static_cast<int>(programs_.size()); }
  int islands() const { return static_cast<int>(islands_.size()); }
  std::optional<int> find(const std::string& key) const;
  const std::vector<int>& members(int island) const { return islands_.at(island).members; }

  // Everything but the sources, which the library holds under each program's key.
  nlohmann::json to_json() const;
  // `candidate_of` gives back a program's candidate from its key.
  static Result<Population> from_json(const nlohmann::json& j,
                                      const std::function<Result<Candidate>(const std::string& key)>& candidate_of);

 private:
  // A cell of the grid: code family bin, primary param bin, register bin (-1 when no compiler
  // reported registers: every cpu kernel).
  using Cell = std::array<int, 3>;
  struct Island {
    std::vector<int> members;
    std::map<Cell, int> elites;  // cell -> program
  };
  Cell cell(int index) const;
  void offer(Island& island, int index);
  std::vector<Program> programs_;
  std::vector<std::string> families_;  // per program
  std::vector<Island> islands_;
  std::map<std::string, int> by_key_;
};

// ---- operators (operators.cpp) -----------------------------------------------------------------

struct Proposal {
  Candidate candidate;
  std::string operator_name, parent_key, other_parent_key;
  int island = 0;
};

// Offline operators. Each returns a candidate that may repeat one seen before; the caller dedups.
// One or two params of the parent moved to a neighbouring choice (p 0.7) or any choice.
Result<Proposal> mutate_params(const Program& parent, std::mt19937_64& rng);
// Each param of `a` that `b` (same family) also has taken from either, at random.
Result<Proposal> cross_params(const Program& a, const Program& b, std::mt19937_64& rng);
// `variant`'s code with the parent's values for the params both have.
Result<Proposal> switch_variant(const Program& parent, const Program& variant);

// The offline operator's choice of the next candidate: a parent selected on the next island in
// turn, then p 0.1 a switch to another correct family, p 0.2 a crossover with a program of the
// same family, else a param mutation. Candidates whose normalised source is in `seen` are
// skipped (and added otherwise). Nothing once kMaxDuplicatesInRowOffline proposals in a row were
// duplicates (the neighbourhood of the population is exhausted) or no program is correct.
constexpr int kMaxDuplicatesInRowOffline = 50;
// An LLM search ends once this many kernels in a row were duplicates (the model is stuck).
constexpr int kMaxDuplicatesInRowLlm = 20;
struct OfflineCounters {
  int next_island = 0, duplicates_in_row = 0, duplicates = 0;
};
std::optional<Proposal> propose_offline(Population& population, std::mt19937_64& rng, std::set<std::string>& seen,
                                        OfflineCounters& counters);

// The LLM operators: what to ask for next on an island, and the candidate in the model's reply.
struct LlmOperator {
  std::string kind;  // diff, rewrite, crossover, fix
  int parent = -1;   // -1: nothing to propose from
  int other = -1;    // a crossover's second parent
};
// On an island with a correct program: a parent selected by weight, then p 0.6 a diff of it, p 0.3
// a rewrite, p 0.1 a crossover with another correct program (a diff when there is none). Else a
// fix of the island's newest failure, or a rewrite of the best program when it has no failure.
LlmOperator choose_llm_operator(const Population& population, int island, std::mt19937_64& rng);
// Sends `messages` and turns the reply into a candidate: a whole file for rewrite, crossover and
// fix, SEARCH/REPLACE blocks applied to `parent_source` for diff. A reply with no kernel, or blocks
// that do not apply, is answered once with what went wrong before the request counts as failed.
Result<Candidate> llm_candidate(LlmClient& llm, std::vector<LlmMessage> messages, const std::string& kind,
                                const std::string& parent_source, const std::string& origin);

// What the LLM is told about the target: the backend, the device's name and arch, and where the
// prompt templates are.
struct PromptContext {
  std::string prompts_dir;
  std::string backend, device, arch;
  std::string exemplar;   // a correct kernel of the same category, or empty
  std::string retrieved;  // tuned kernels of similar problems from the library, or empty
};

// The one-shot example of a good kernel of the task's category shown in prompts (MultiKernelBench
// found category-aware examples help): prompts_dir/exemplars/<category>.cpp (cpu) or .cu (cuda,
// hip); else the optimised seed of another task of the same category in `all`; else empty.
std::string category_exemplar(const Task& task, const std::vector<Task>& all, const std::string& backend,
                              const std::string& prompts_dir);

// The messages (system, user) that ask for `kind` (rewrite, diff, crossover, fix) from `parent`
// (and `other` for a crossover), with the population's history around them.
Result<std::vector<LlmMessage>> build_messages(const std::string& kind, const Task& task, const PromptContext& context,
                                               const Population& population, int parent, int other = -1);
// The task's part of every prompt (prompts/task.txt rendered).
Result<std::string> render_task_prompt(const Task& task, const PromptContext& context, const std::string& entry);

// ---- the search --------------------------------------------------------------------------------

struct SearchOptions {
  std::string backend = "cpu";
  int evaluations = 30;  // per task, the seeds included
  double time_s = std::numeric_limits<double>::infinity();  // for the whole run
  double target_speedup = 0;  // stop a task once its verified best reaches it; 0: never
  int patience = 100;         // stop a task after this many evaluations without a 0.5% gain
  int islands = 4;
  int migration_interval = 25;  // evaluations between ring migrations
  std::uint64_t seed = 42;
  int concurrency = 4;  // LLM requests waiting on the endpoint at once
  // With an LLM, a proposal is compiled (for the code-hash dedup) on its request's thread as soon
  // as it arrives, beside the other requests, so that the search thread only dedups and
  // evaluates; false: on the search thread just before its evaluation, as offline.
  bool compile_on_request_threads = true;
  EvalOptions eval;
  nlohmann::json to_json() const;
  static SearchOptions from_json(const nlohmann::json& j);
};

struct TaskOutcome {
  std::string task;
  int evaluations = 0, correct = 0, failed = 0, duplicates = 0, llm_failures = 0;
  double best_speedup = 0, best_roofline_pct = 0, best_median_us = 0;
  std::string best_key, best_origin;
  double seconds = 0, cost_usd = 0;
  // Compiling candidates to dedup them by their code, seeds included, and the part of it spent off
  // the search thread (LLM proposals compiled on their request's thread), which no evaluation waited for.
  double compile_seconds = 0, compile_seconds_hidden = 0;
  std::string stop_reason;
};

// One stretch of a task's work on the steady clock (steady_seconds()): a candidate compiled to
// dedup it ("compile"), evaluated ("evaluate") or re-verified ("reverify").
struct SearchSpan {
  std::string what;
  std::string origin;  // the candidate's
  double start_s = 0, end_s = 0;
  bool off_search_thread = false;  // a compile on an LLM request's thread
};

// Where a search reports what happens, always from the search thread; `progress` is called after
// every evaluation, `span` once a compile or an evaluation is accounted for (the compile of an LLM
// proposal when its outcome reaches the search thread).
struct SearchReporter {
  std::function<void(const std::string& line)> log;
  std::function<void(const TaskOutcome& so_far, int evaluations_planned)> progress;
  std::function<void(const SearchSpan& span)> span;
};

// What the search evaluates its candidates with. The search asks from its own thread, except
// code_hash, which LLM request threads call too, beside the search thread's calls: an
// implementation must allow that.
class CandidateEvaluator {
 public:
  virtual ~CandidateEvaluator() = default;
  virtual const Task& task() const = 0;
  // As Evaluator::evaluate, Evaluator::code_hash and Evaluator::reverify.
  virtual EvalResult evaluate(const Candidate& candidate, const std::string& file_name,
                              const EvalOptions& options) const = 0;
  virtual Result<std::string> code_hash(const Candidate& candidate, const std::string& file_name) const = 0;
  virtual EvalResult reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                              const EvalOptions& options) const = 0;
  // How many evaluations may run at once (a pool's workers); above 1, the search calls evaluate
  // from threads of its own, one per evaluation in flight, and proposes ahead while they run.
  virtual int capacity() const { return 1; }
  // Whether no worker is left to evaluate on: an evaluation that came back with no `worker` then
  // never ran, and the search ends as interrupted, to be resumed.
  virtual bool workers_lost() const { return false; }
};

// The evaluator itself: every candidate compiled and run in the worker.
class EvaluatorAdapter final : public CandidateEvaluator {
 public:
  explicit EvaluatorAdapter(const Evaluator& evaluator) : evaluator_(&evaluator) {}
  const Task& task() const override { return evaluator_->task(); }
  EvalResult evaluate(const Candidate& candidate, const std::string& file_name,
                      const EvalOptions& options) const override {
    return evaluator_->evaluate(candidate, file_name, options);
  }
  Result<std::string> code_hash(const Candidate& candidate, const std::string& file_name) const override {
    return evaluator_->code_hash(candidate, file_name);
  }
  EvalResult reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                      const EvalOptions& options) const override {
    return evaluator_->reverify(candidate, file_name, first, options);
  }

 private:
  const Evaluator* evaluator_;
};

class Search {
 public:
  // `llm` null: the offline operators. `store` must outlive the search and is used from this
  // thread only; LLM calls are recorded by the client's own callback. Once `stop` is set (from a
  // signal handler too), every task stops after the evaluation in progress.
  Search(SearchOptions options, KernelStore& store, std::string run_id, std::string device, PromptContext prompts,
         LlmClient* llm, SearchReporter reporter, const std::atomic<bool>* stop = nullptr);

  // Searches one task until a termination condition holds, continuing from `resumed` (the state
  // a killed run saved) when given. `deadline_s` is this task's end on the steady clock.
  Result<TaskOutcome> run(const CandidateEvaluator& evaluator, const std::optional<std::string>& resumed,
                          double deadline_s);
  Result<TaskOutcome> run(const Evaluator& evaluator, const std::optional<std::string>& resumed, double deadline_s);

 private:
  class TaskRun;  // one task's search: its state and its phases (search.cpp)
  SearchOptions options_;
  KernelStore* store_;
  std::string run_id_, device_;
  PromptContext prompts_;
  LlmClient* llm_;
  SearchReporter reporter_;
  const std::atomic<bool>* stop_;
};

// What a search run saves before its first task, as the library's search state of task "", so that
// `--resume` continues it as it began: its options, and the tasks it was asked for.
struct SearchRunOptions {
  SearchOptions options;
  std::string suite, tasks;  // as --suite and --tasks gave them
};
Status save_search_options(KernelStore& store, const std::string& run_id, const SearchRunOptions& saved);
// An invalid_input error when the run saved none, or what it saved does not parse.
Result<SearchRunOptions> saved_search_options(const KernelStore& store, const std::string& run_id);

// Seconds on the steady clock, the search's deadlines' unit.
double steady_seconds();

}  // namespace kforge
