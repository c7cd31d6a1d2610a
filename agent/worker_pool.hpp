// agent/worker_pool: one search over many workers. A worker is a `kforge worker` on the other end
// of a pipe (the evaluator's Worker); what starts it is someone else's job: this machine (pinned to
// a core set with taskset, or to a GPU with CUDA_VISIBLE_DEVICES/HIP_VISIBLE_DEVICES), ssh, a step
// of a Slurm allocation (srun), or any command. The pool hands its workers out one evaluation at a
// time (so at most one timed evaluation per device), counts their failures, and retires a worker
// that fails three times in a row. PoolEvaluator is the search's CandidateEvaluator over a pool:
// candidates compile here, through the compile cache, and the requests carry the binaries and the
// task's files (Worker::ship_files): a worker needs no shared filesystem. A worker whose compile
// target (compile_target(): the cpu's ISA, a GPU's arch) differs from this side's is sent the
// compile requests instead, and compiles for itself.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/search.hpp"
#include "evaluator/evaluator.hpp"

namespace kforge {

// One SPEC of --workers.
struct WorkerSpec {
  enum class Kind { local, ssh, slurm, command };
  Kind kind = Kind::local;
  int count = 1;
  std::string host;                // ssh: [user@]host, as ssh takes it
  std::vector<std::string> extra;  // slurm: more srun arguments
  std::string command;             // cmd: run by sh -c
  std::string text;                // as written
};

// The values of --workers, each SPEC[,SPEC...] with SPEC one of local:N, ssh:HOST[:N],
// slurm:N[:EXTRA_SRUN_ARGS], cmd:COMMAND (which takes the rest of its value, commas included).
// An invalid_input error names the bad spec and says what is expected.
Result<std::vector<WorkerSpec>> parse_worker_specs(const std::vector<std::string>& values);

// Where the pool's engines are, from the environment: KFORGE_SSH (the ssh command, default "ssh";
// e.g. "ssh -F cluster_config"), KFORGE_REMOTE_KFORGE (kforge on the far side, default "kforge"
// over ssh, this program's path under Slurm).
struct PoolEngines {
  std::vector<std::string> ssh;
  std::string remote_kforge;  // empty: the default for each engine
  static PoolEngines from_environment();
};

// What a worker said about itself when it started.
struct PoolWorkerInfo {
  std::string name;     // "local#0", "ssh:gpu1#1", "slurm#0", "cmd#0"
  std::string host;     // its hostname
  std::string device;   // its device key for the pool's backend ("cpu:<model>", "nvidia:sm_90:132")
  std::string version;  // its kforge's
  std::vector<std::string> devices;  // every device it sees, "key (name)"
  std::vector<std::string> command;  // how it is started
  std::string target;                // its compile target for the pool's backend (compile_target())
  bool compiles_itself = false;      // its target is not the coordinator's: it is sent what to compile
  int cores = 0;                     // the cores it may run on
  double latency_ms = 0;             // a ping's round trip, once started
  std::string label() const { return name + "@" + host; }
};

class WorkerPool {
 public:
  // Starts every worker of `specs` for `backend` and asks each who it is. `gpus`: how many devices
  // of a GPU backend this machine has (what local:N pins to); 0 for the cpu. A worker that does not
  // start, has no device for the backend, or runs another kforge version is an error; so is a
  // Slurm spec that cannot get its allocation.
  static Result<std::unique_ptr<WorkerPool>> start(const std::vector<WorkerSpec>& specs, const std::string& backend,
                                                   int gpus, std::function<void(const std::string&)> log = {});
  // Stops the workers, then gives back an allocation the pool obtained itself.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // The coordinator's compile target for the pool's backend, which workers' are compared with.
  const std::string& target() const { return target_; }
  const PoolWorkerInfo& info(int index) const { return members_.at(index).info; }
  const std::shared_ptr<Worker>& worker(int index) const { return members_.at(index).worker; }
  // Workers not retired.
  int working() const;

  // A free worker, waiting for one: of device key `device` when given and one of those is left,
  // other than `avoid` when another is left. Nothing once every worker is retired.
  std::optional<int> acquire(const std::string& device = "", int avoid = -1);
  // Hands a worker back; `failed`: it died or hung during its evaluation. Three in a row retire it.
  void release(int index, bool failed);
  // Runs `job`, which calls worker `index`, on that worker's own thread and waits for it. A worker
  // process dies with the thread that started it (PR_SET_PDEATHSIG): that thread lives as long
  // as the pool, not as long as one evaluation's.
  void on_thread(int index, const std::function<void()>& job);

 private:
  class Thread;  // runs one worker's calls
  struct Member {
    PoolWorkerInfo info;
    std::shared_ptr<Worker> worker;
    std::shared_ptr<Thread> thread;
    bool busy = false, retired = false;
    int failures_in_row = 0;
  };
  WorkerPool() = default;
  static Status hello(Member& member, const std::string& backend, const std::string& target);
  std::vector<Member> members_;
  std::string target_;
  std::string allocation_;  // a Slurm job this pool obtained and releases
  // A process that releases allocation_ once this one ends, even by kill -9, and the pipe whose end it waits for.
  int watcher_ = -1, watcher_pipe_ = -1;
  std::function<void(const std::string&)> log_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
};

// A pool's worker failures in a row before it is retired.
constexpr int kPoolFailuresToRetire = 3;

// The search's evaluator over a pool: an Evaluator of the task per worker; evaluations run on free
// workers, as many at once as there are workers. A candidate whose worker died or hung is tried
// once more on another worker, then recorded as the crash or timeout it was, naming the worker.
// A new best is re-verified on another worker with the same device key where there is one.
class PoolEvaluator final : public CandidateEvaluator {
 public:
  static Result<std::unique_ptr<PoolEvaluator>> create(const Task& task, const Backend& backend, WorkerPool& pool,
                                                       std::function<void(const std::string&)> log = {});
  const Task& task() const override { return evaluators_.front().task(); }
  EvalResult evaluate(const Candidate& candidate, const std::string& file_name,
                      const EvalOptions& options) const override;
  Result<std::string> code_hash(const Candidate& candidate, const std::string& file_name) const override {
    return evaluators_.front().code_hash(candidate, file_name);
  }
  EvalResult reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                      const EvalOptions& options) const override;
  int capacity() const override { return pool_->size(); }
  bool workers_lost() const override { return pool_->working() == 0; }

 private:
  PoolEvaluator(WorkerPool& pool, std::vector<Evaluator> evaluators, std::function<void(const std::string&)> log)
      : pool_(&pool), evaluators_(std::move(evaluators)), log_(std::move(log)) {}
  // One try on worker `index`: the result, named after the worker, and whether the worker failed.
  std::pair<EvalResult, bool> run_on(int index, const std::function<EvalResult(const Evaluator&)>& run) const;
  WorkerPool* pool_;
  std::vector<Evaluator> evaluators_;  // per worker of the pool
  std::function<void(const std::string&)> log_;
};

}  // namespace kforge
