// The worker pool: specs parsed, workers started by their engines and asked who they are, then
// handed out one evaluation at a time; and the evaluator that runs a search over them.
#include "agent/worker_pool.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

namespace kforge {
namespace {

constexpr double kStartTimeoutS = 120;  // an srun step or an ssh login may take a while to start

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::optional<int> positive(const std::string& text) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const int n = std::stoi(text);
  return n > 0 ? std::optional<int>(n) : std::nullopt;
}

Error bad_spec(const std::string& spec, const std::string& why) {
  return make_error(ErrorKind::invalid_input,
                    "--workers {}: {} (expected local:N, ssh:HOST[:N], slurm:N[:SRUN_ARGS] or cmd:COMMAND)", spec, why);
}

std::string this_program() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "kforge" : path.string();
}

// The cores this process may run on, in order.
std::vector<int> own_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cores;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
  return cores;
}

// A command's stdout and stderr, and its exit code.
std::pair<std::string, int> capture(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) line += "'" + std::regex_replace(a, std::regex("'"), "'\\''") + "' ";
  FILE* pipe = popen((line + "2>&1").c_str(), "r");
  if (!pipe) return {"cannot run " + argv.front(), -1};
  std::string out;
  char chunk[4096];
  while (size_t n = fread(chunk, 1, sizeof chunk, pipe)) out.append(chunk, n);
  const int status = pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// An allocation for `tasks` Slurm tasks (and as many GPUs for a GPU backend), without a shell:
// its job id. salloc reads the rest (partition, account, time) from $SALLOC_* as usual.
Result<std::string> obtain_allocation(int tasks, bool gpus) {
  std::vector<std::string> argv = {"salloc", "--no-shell", "--nodes=1-" + std::to_string(tasks),
                                   "--ntasks=" + std::to_string(tasks)};
  if (gpus) argv.push_back("--gpus=" + std::to_string(tasks));
  auto [out, code] = capture(argv);
  std::smatch m;
  if (code != 0 || !std::regex_search(out, m, std::regex("Granted job allocation ([0-9]+)")))
    return make_error(ErrorKind::invalid_input, "--workers slurm: salloc gave no allocation: {}",
                      out.empty() ? fmt::format("exit {}", code) : out.substr(0, out.find_last_not_of('\n') + 1));
  return m[1].str();
}

// A process that gives allocation `job` back once this one ends, however it ends (kill -9
// included): it waits for the end of a pipe only this process writes to, then runs scancel. Its
// pid, and the pipe's end to close; an error when it cannot start.
Result<std::pair<pid_t, int>> watch_allocation(const std::string& job) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return make_error(ErrorKind::internal, "pipe: {}", std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    return make_error(ErrorKind::internal, "fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    setsid();  // not in our process group: a signal to the coordinator's group leaves it running
    dup2(fds[0], STDIN_FILENO);
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
    close_range(3, ~0U, 0);
    execlp("sh", "sh", "-c", "cat; exec scancel \"$0\"", job.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  return std::pair{pid, fds[1]};
}

}  // namespace

class WorkerPool::Thread {
 public:
  Thread() : thread_([this] { loop(); }) {}
  ~Thread() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void run(const std::function<void()>& job) {
    std::promise<void> finished;
    auto future = finished.get_future();
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back([&] {
        try {
          job();
          finished.set_value();
        } catch (...) {
          finished.set_exception(std::current_exception());
        }
      });
    }
    changed_.notify_all();
    future.get();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::thread thread_;  // last: it starts once the rest is ready
};

Result<std::vector<WorkerSpec>> parse_worker_specs(const std::vector<std::string>& values) {
  std::vector<WorkerSpec> specs;
  for (const std::string& value : values) {
    std::size_t at = 0;
    while (at <= value.size()) {
      std::string text;
      if (value.compare(at, 4, "cmd:") == 0) {
        text = value.substr(at);  // a command may hold commas: it takes the rest
        at = value.size() + 1;
      } else {
        const std::size_t comma = std::min(value.find(',', at), value.size());
        text = value.substr(at, comma - at);
        at = comma + 1;
      }
      if (text.empty()) return bad_spec(value, "an empty spec");
      WorkerSpec spec;
      spec.text = text;
      const std::size_t colon = text.find(':');
      const std::string kind = text.substr(0, colon);
      const std::string rest = colon == std::string::npos ? "" : text.substr(colon + 1);
      if (kind == "local") {
        auto n = positive(rest);
        if (!n) return bad_spec(text, "local needs a worker count N >= 1");
        spec.kind = WorkerSpec::Kind::local, spec.count = *n;
      } else if (kind == "ssh") {
        spec.kind = WorkerSpec::Kind::ssh;
        const std::size_t last = rest.rfind(':');
        spec.host = rest;
        if (last != std::string::npos) {
          auto n = positive(rest.substr(last + 1));
          if (!n) return bad_spec(text, "the worker count after the host must be a number >= 1");
          spec.host = rest.substr(0, last), spec.count = *n;
        }
        if (spec.host.empty() || spec.host.find_first_of(" \t'\"") != std::string::npos || spec.host[0] == '-')
          return bad_spec(text, "ssh needs a host");
      } else if (kind == "slurm") {
        spec.kind = WorkerSpec::Kind::slurm;
        const std::size_t second = rest.find(':');
        auto n = positive(rest.substr(0, second));
        if (!n) return bad_spec(text, "slurm needs a worker count N >= 1");
        spec.count = *n;
        if (second != std::string::npos) spec.extra = words(rest.substr(second + 1));
      } else if (kind == "cmd") {
        spec.kind = WorkerSpec::Kind::command, spec.command = rest;
        if (words(rest).empty()) return bad_spec(text, "cmd needs a command");
      } else {
        return bad_spec(text, fmt::format("unknown kind '{}'", kind));
      }
      specs.push_back(std::move(spec));
    }
  }
  return specs;
}

PoolEngines PoolEngines::from_environment() {
  PoolEngines engines;
  const char* ssh = std::getenv("KFORGE_SSH");
  engines.ssh = words(ssh && *ssh ? ssh : "ssh");
  if (const char* remote = std::getenv("KFORGE_REMOTE_KFORGE")) engines.remote_kforge = remote;
  return engines;
}

Result<std::unique_ptr<WorkerPool>> WorkerPool::start(const std::vector<WorkerSpec>& specs, const std::string& backend,
                                                      int gpus, std::function<void(const std::string&)> log) {
  std::unique_ptr<WorkerPool> pool(new WorkerPool());
  pool->log_ = std::move(log);
  const PoolEngines engines = PoolEngines::from_environment();
  const bool on_gpu = backend != "cpu";
  const std::string visible = backend == "hip" ? "HIP_VISIBLE_DEVICES" : "CUDA_VISIBLE_DEVICES";
  const std::string self = this_program();

  int local = 0, slurm = 0;
  for (const auto& s : specs) {
    if (s.kind == WorkerSpec::Kind::local) local += s.count;
    if (s.kind == WorkerSpec::Kind::slurm) slurm += s.count;
  }
  // local:N splits this machine: one GPU each, or disjoint core sets.
  const std::vector<int> cores = own_cores();
  if (on_gpu && local > gpus)
    return make_error(ErrorKind::invalid_input, "--workers: {} local workers, but this machine has {} {} device(s)",
                      local, gpus, backend);
  if (!on_gpu && local > static_cast<int>(cores.size()))
    return make_error(ErrorKind::invalid_input, "--workers: {} local workers, but this process may use {} core(s)",
                      local, cores.size());
  std::string job;
  if (slurm > 0) {
    if (const char* id = std::getenv("SLURM_JOB_ID"); id && *id) {
      job = id;  // inside an allocation: its steps
    } else {
      auto obtained = obtain_allocation(slurm, on_gpu);
      if (!obtained) return obtained.error();
      job = pool->allocation_ = *obtained;
      if (pool->log_) pool->log_(fmt::format("slurm: obtained allocation {} for {} worker(s)", job, slurm));
      auto watcher = watch_allocation(job);
      if (!watcher) return watcher.error();  // the pool's destructor gives the allocation back
      std::tie(pool->watcher_, pool->watcher_pipe_) = *watcher;
    }
  }

  int local_index = 0;
  std::map<std::string, int> per_kind;
  for (const auto& s : specs) {
    for (int i = 0; i < s.count; ++i) {
      Member m;
      std::vector<std::string>& command = m.info.command;
      switch (s.kind) {
        case WorkerSpec::Kind::local:
          m.info.name = fmt::format("local#{}", local_index);
          if (on_gpu) {
            command = {"env", fmt::format("{}={}", visible, local_index), self, "worker"};
          } else if (local > 1) {
            // Contiguous, disjoint core sets; the first ones take one core more when they do not divide.
            const std::size_t share = cores.size() / local, more = cores.size() % local;
            const std::size_t first = local_index * share + std::min<std::size_t>(local_index, more);
            const std::size_t n = share + (static_cast<std::size_t>(local_index) < more ? 1 : 0);
            std::string list;
            for (std::size_t c = first; c < first + n; ++c) list += (list.empty() ? "" : ",") + std::to_string(cores[c]);
            command = {"taskset", "-c", list, self, "worker"};
          } else {
            command = {self, "worker"};
          }
          ++local_index;
          break;
        case WorkerSpec::Kind::ssh: {
          m.info.name = fmt::format("ssh:{}#{}", s.host, per_kind[s.host]++);
          command = engines.ssh;
          for (const char* a : {"-T", "-o", "BatchMode=yes", "--"}) command.push_back(a);
          command.push_back(s.host);
          const std::string kforge = engines.remote_kforge.empty() ? "kforge" : engines.remote_kforge;
          command.push_back((on_gpu ? fmt::format("env {}={} ", visible, i) : "") + kforge + " worker");
          break;
        }
        case WorkerSpec::Kind::slurm:
          m.info.name = fmt::format("slurm#{}", per_kind["slurm"]++);
          command = {"srun", "--jobid=" + job, "--ntasks=1", "--nodes=1", "--exclusive", "-u"};
          if (on_gpu) command.push_back("--gres=gpu:1");
          command.insert(command.end(), s.extra.begin(), s.extra.end());
          command.push_back(engines.remote_kforge.empty() ? self : engines.remote_kforge);
          command.push_back("worker");
          break;
        case WorkerSpec::Kind::command:
          m.info.name = fmt::format("cmd#{}", per_kind["cmd"]++);
          command = {"sh", "-c", s.command};
          break;
      }
      m.worker = std::make_shared<Worker>(command);
      m.worker->ship_files(true);  // it may not see this machine's files, whatever started it
      m.thread = std::make_shared<Thread>();
      pool->members_.push_back(std::move(m));
    }
  }

  // What this side compiles for: each worker says its own target, and one that differs compiles for itself.
  auto cache = CompileCache::open();
  auto own = cache ? make_backend(backend, *cache) : Result<std::unique_ptr<Backend>>(cache.error());
  if (!own) return own.error();
  pool->target_ = compile_target(**own);
  // Each started and asked who it is, all at once: ssh logins and srun steps take seconds.
  std::vector<std::future<Status>> started;
  for (auto& member : pool->members_)
    started.push_back(std::async(std::launch::async, [&member, &backend, &pool]() {
      Status status;
      member.thread->run([&] { status = hello(member, backend, pool->target_); });
      return status;
    }));
  for (auto& s : started)
    if (Status status = s.get(); !status) return status.error();
  return pool;
}

// Starts a worker with a ping, and reads who it is from the answer; a second ping times the round trip.
Status WorkerPool::hello(Member& member, const std::string& backend, const std::string& target) {
  PoolWorkerInfo& info = member.info;
  auto who = member.worker->call({{"type", "ping"}, {"backend", backend}}, kStartTimeoutS);
  if (!who) return make_error(ErrorKind::invalid_input, "worker {} did not start: {}", info.name, who.error().message);
  info.host = who->value("host", "?");
  info.version = who->value("version", "?");
  info.cores = who->value("cores", 0);
  if (info.version != KFORGE_VERSION)
    return make_error(ErrorKind::invalid_input, "worker {} on {} runs kforge {}, this is kforge {}", info.name,
                      info.host, info.version, KFORGE_VERSION);
  if (who->contains("device_error") || who->value("devices", nlohmann::json::array()).empty())
    return make_error(ErrorKind::invalid_input, "worker {} on {} has no {} device: {}", info.name, info.host,
                      backend, who->value("device_error", "none found"));
  for (const auto& d : (*who)["devices"])
    info.devices.push_back(fmt::format("{} ({})", d.value("key", ""), d.value("name", "")));
  info.device = (*who)["devices"][0].value("key", "");
  info.target = who->value("target", "?");
  info.compiles_itself = info.target != target;
  const auto sent = std::chrono::steady_clock::now();
  if (auto again = member.worker->call({{"type", "ping"}}, 30); !again)
    return make_error(ErrorKind::invalid_input, "worker {}: {}", info.name, again.error().message);
  info.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  return {};
}

WorkerPool::~WorkerPool() {
  for (auto& m : members_) m.thread->run([&] { m.worker->stop(); });
  bool released = false;
  if (!allocation_.empty()) {
    auto [out, code] = capture({"scancel", allocation_});
    if (code != 0 && log_) log_(fmt::format("slurm: scancel {} failed: {}", allocation_, out));
    released = code == 0;
  }
  if (watcher_ > 0) {
    // Released: the watcher has nothing left to do. Else it tries once more, on its own time.
    if (released) kill(watcher_, SIGKILL);
    close(watcher_pipe_);
    if (released) waitpid(watcher_, nullptr, 0);
  }
}

int WorkerPool::working() const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& m : members_) n += !m.retired;
  return n;
}

std::optional<int> WorkerPool::acquire(const std::string& device, int avoid) {
  std::unique_lock lock(mutex_);
  for (;;) {
    // Who may take it: the device's workers if any is left, else any; others than `avoid` if any.
    auto eligible = [&](int i, bool by_device, bool avoiding) {
      const Member& m = members_[i];
      return !m.retired && (!by_device || m.info.device == device) && (!avoiding || i != avoid);
    };
    bool by_device = false, avoiding = false;
    for (int i = 0; i < size(); ++i) by_device |= !device.empty() && eligible(i, true, false);
    for (int i = 0; i < size(); ++i) avoiding |= avoid >= 0 && eligible(i, by_device, true);
    bool any = false;
    for (int i = 0; i < size(); ++i) {
      if (!eligible(i, by_device, avoiding)) continue;
      any = true;
      if (!members_[i].busy) {
        members_[i].busy = true;
        return i;
      }
    }
    if (!any) return std::nullopt;
    changed_.wait(lock);
  }
}

void WorkerPool::on_thread(int index, const std::function<void()>& job) {
  members_.at(index).thread->run(job);
}

void WorkerPool::release(int index, bool failed) {
  {
    std::lock_guard lock(mutex_);
    Member& m = members_.at(index);
    m.busy = false;
    m.failures_in_row = failed ? m.failures_in_row + 1 : 0;
    if (m.failures_in_row >= kPoolFailuresToRetire && !m.retired) {
      m.retired = true;
      m.worker->stop();
      if (log_)
        log_(fmt::format("worker {} failed {} times in a row: retired ({} left)", m.info.label(), m.failures_in_row,
                         std::count_if(members_.begin(), members_.end(), [](const Member& x) { return !x.retired; })));
    }
  }
  changed_.notify_all();
}

// ---- the evaluator over a pool ------------------------------------------------------------------

Result<std::unique_ptr<PoolEvaluator>> PoolEvaluator::create(const Task& task, const Backend& backend, WorkerPool& pool,
                                                             std::function<void(const std::string&)> log) {
  std::vector<Evaluator> evaluators;
  for (int i = 0; i < pool.size(); ++i) {
    auto evaluator = Evaluator::create(task, backend, pool.worker(i));  // the compiles after the first are cache hits
    if (!evaluator) return evaluator.error();
    evaluator->compile_on_worker(pool.info(i).compiles_itself);
    evaluators.push_back(std::move(*evaluator));
  }
  return std::unique_ptr<PoolEvaluator>(new PoolEvaluator(pool, std::move(evaluators), std::move(log)));
}

std::pair<EvalResult, bool> PoolEvaluator::run_on(int index, const std::function<EvalResult(const Evaluator&)>& run) const {
  const Worker& worker = *pool_->worker(index);
  const bool was_running = worker.running();
  const int starts = worker.starts();
  EvalResult r;
  pool_->on_thread(index, [&] { r = run(evaluators_[index]); });
  // The worker failed when a call was made (it was up, or it was started) and it is down after an
  // evaluation that did not end well: it died, hung or answered garbage, and was stopped.
  const bool called = was_running || worker.starts() > starts;
  const bool failed = called && !worker.running() &&
                      (r.status == EvalStatus::crash || r.status == EvalStatus::timeout ||
                       r.status == EvalStatus::runtime_error);
  const PoolWorkerInfo& info = pool_->info(index);
  r.worker = info.label(), r.device = info.device;
  pool_->release(index, failed);
  return {std::move(r), failed};
}

EvalResult PoolEvaluator::evaluate(const Candidate& candidate, const std::string& file_name,
                                   const EvalOptions& options) const {
  int failed_on = -1;
  for (int attempt = 0;; ++attempt) {
    const auto index = pool_->acquire("", failed_on);
    if (!index) {
      EvalResult none;  // not evaluated: no worker field, and workers_lost() says why
      none.message = "every worker is lost";
      return none;
    }
    auto [r, failed] = run_on(*index, [&](const Evaluator& e) { return e.evaluate(candidate, file_name, options); });
    if (!failed) return r;
    if (pool_->working() == 0) {  // never evaluated to the end: the resumed run evaluates it again
      r.worker.clear();
      return r;
    }
    if (attempt == 0) {
      if (log_)
        log_(fmt::format("{}: worker {} failed ({}); trying it {}", file_name, r.worker, r.message,
                         pool_->size() > 1 ? "on another worker" : "again"));
      failed_on = *index;
      continue;
    }
    r.message = fmt::format("{} (worker {}, after a retry)", r.message, r.worker);
    return r;
  }
}

EvalResult PoolEvaluator::reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                                   const EvalOptions& options) const {
  int ran_on = -1;
  for (int i = 0; i < pool_->size(); ++i)
    if (pool_->info(i).label() == first.worker) ran_on = i;
  const auto index = pool_->acquire(first.device, ran_on);
  if (!index) {
    EvalResult none;
    none.message = "every worker is lost";
    return none;
  }
  auto [r, failed] =
      run_on(*index, [&](const Evaluator& e) { return e.reverify(candidate, file_name, first, options); });
  if (failed) r.message = fmt::format("{} (worker {})", r.message, r.worker);
  return r;
}

}  // namespace kforge
