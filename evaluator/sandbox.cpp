// The run-time sandbox of the evaluation child: resource limits and an allow-list seccomp filter,
// in two stages. enter_sandbox, before the reference and the candidate are loaded (their static
// constructors run inside it): every system call not listed fails with EPERM, so an unexpected
// one fails cleanly; the loader may still map the libraries' files executable. seal_sandbox, once
// they are loaded and before either runs: no executable mapping at all any more. The calls that
// only an attack makes (memfd_create, executable anonymous memory, userfaultfd, perf_event_open,
// bpf) kill the process with SIGSYS instead, which the worker reports
// as rejected_cheat: no honest kernel, nor anything it links, reaches them by accident.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "evaluator/evaluator.hpp"

namespace kforge {
namespace {

Status limit(int resource, rlim_t value, const char* name) {
  rlimit r{value, value};
  if (setrlimit(resource, &r) != 0) return make_error(ErrorKind::internal, "setrlimit({}): {}", name, std::strerror(errno));
  return {};
}

// A filter under construction; the first failing rule is kept and reported at load().
class Filter {
 public:
  explicit Filter(uint32_t default_action) : ctx_(seccomp_init(default_action)) {
    if (!ctx_) rc_ = -ENOMEM;
  }
  ~Filter() { seccomp_release(ctx_); }
  Filter& add(uint32_t action, int syscall, std::initializer_list<scmp_arg_cmp> args = {}) {
    if (rc_ == 0) rc_ = seccomp_rule_add_array(ctx_, action, syscall, static_cast<unsigned>(args.size()), args.begin());
    return *this;
  }
  // The second stage runs on every thread, and needs no prctl: no_new_privs holds since the first.
  Status load(bool second_stage) {
    if (rc_ == 0 && second_stage) rc_ = seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc_ == 0 && second_stage) rc_ = seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_NNP, 0);
    if (rc_ == 0) rc_ = seccomp_load(ctx_);
    if (rc_ != 0) return make_error(ErrorKind::internal, "seccomp: {}", std::strerror(-rc_));
    return {};
  }

 private:
  scmp_filter_ctx ctx_;
  int rc_ = 0;
};

constexpr uint32_t kRefuse = SCMP_ACT_ERRNO(EPERM);
constexpr uint32_t kKill = SCMP_ACT_KILL_PROCESS;
constexpr scmp_datum_t kExec = PROT_EXEC;

}  // namespace

Status enter_sandbox(const EvalOptions& options) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // No RLIMIT_FSIZE: it would also hit a stderr redirected to a file; seccomp refuses file writes.
  for (Status s : {limit(RLIMIT_CORE, 0, "core"), limit(RLIMIT_NOFILE, 64, "nofile"),
                   limit(RLIMIT_AS, options.memory_limit_bytes, "as"),
                   limit(RLIMIT_CPU, static_cast<rlim_t>(options.timeout_s * cores) + 10, "cpu")})
    if (!s) return s;

  Filter f(kRefuse);
  // Computing: memory, threads (OpenMP, BLIS), their synchronisation, scheduling and clocks.
  for (int sc : {SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(mincore),
                 SCMP_SYS(futex), SCMP_SYS(futex_waitv), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list),
                 SCMP_SYS(rseq), SCMP_SYS(set_tid_address), SCMP_SYS(arch_prctl), SCMP_SYS(membarrier),
                 SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(getppid),
                 SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
                 SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_setaffinity),
                 SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler), SCMP_SYS(sched_getattr),
                 SCMP_SYS(sched_get_priority_max), SCMP_SYS(sched_get_priority_min), SCMP_SYS(getpriority),
                 SCMP_SYS(getcpu), SCMP_SYS(get_mempolicy), SCMP_SYS(set_mempolicy), SCMP_SYS(mbind),
                 SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
                 SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(getrusage), SCMP_SYS(times), SCMP_SYS(sysinfo),
                 SCMP_SYS(uname), SCMP_SYS(getrandom), SCMP_SYS(getrlimit), SCMP_SYS(restart_syscall),
                 SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
                 // Descriptors it already holds (its result channel, stderr) and reading files.
                 SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64), SCMP_SYS(write), SCMP_SYS(writev),
                 SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(lseek),
                 SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink),
                 SCMP_SYS(readlinkat), SCMP_SYS(getcwd), SCMP_SYS(getdents64),
                 // Only further restrictions: seal_sandbox installs the second stage with it.
                 SCMP_SYS(seccomp)})
    f.add(SCMP_ACT_ALLOW, sc);
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_NE, F_SETOWN)});
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), {SCMP_A2(SCMP_CMP_EQ, 0)});  // reading a limit only
  for (scmp_datum_t option : {PR_SET_NAME, PR_GET_NAME, PR_SET_VMA}) f.add(SCMP_ACT_ALLOW, SCMP_SYS(prctl), {SCMP_A0(SCMP_CMP_EQ, option)});
  // Threads, never processes. clone3's flags sit in memory a filter cannot read: ENOSYS sends
  // glibc back to clone.
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(clone), {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
  f.add(SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3));
  // Signals to itself only (abort()).
  const auto own = static_cast<scmp_datum_t>(getpid());
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(kill), {SCMP_A0(SCMP_CMP_EQ, own)});
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(tgkill), {SCMP_A0(SCMP_CMP_EQ, own)});
  // Files: opened for reading only (the loader); openat2's flags sit in memory, like clone3's.
  const scmp_datum_t writing = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;  // (O_TMPFILE needs one of them)
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(openat), {SCMP_A2(SCMP_CMP_MASKED_EQ, writing, 0)});
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(open), {SCMP_A1(SCMP_CMP_MASKED_EQ, writing, 0)});
  f.add(SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2));
  // Memory, never executable, but for the libraries' files that the loader maps before
  // seal_sandbox; executable anonymous memory is new code, and only an attack asks for it.
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, 0)});
  f.add(SCMP_ACT_ALLOW, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, kExec), SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, 0)});
  f.add(kKill, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, kExec), SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, MAP_ANONYMOUS)});
  for (int sc : {SCMP_SYS(mprotect), SCMP_SYS(pkey_mprotect)}) {
    f.add(SCMP_ACT_ALLOW, sc, {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, 0)});
    f.add(kKill, sc, {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, kExec)});
  }
  // New code, page-fault handlers, the kernel's own tracers: refused outright. (Other processes'
  // memory, ptrace, is plain EPERM: tests/sandbox probes it and wants a clean failure.)
  for (int sc : {SCMP_SYS(memfd_create), SCMP_SYS(memfd_secret), SCMP_SYS(userfaultfd), SCMP_SYS(perf_event_open),
                 SCMP_SYS(bpf)})
    f.add(kKill, sc);
  return f.load(false);
}

Status seal_sandbox() {
  // Stacked on enter_sandbox's filter (the strictest answer wins), on every thread: from now on no
  // mapping is executable, so no file opened after this point can become code either.
  Filter f(SCMP_ACT_ALLOW);
  f.add(kKill, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, kExec)});
  for (int sc : {SCMP_SYS(mprotect), SCMP_SYS(pkey_mprotect)}) f.add(kKill, sc, {SCMP_A2(SCMP_CMP_MASKED_EQ, kExec, kExec)});
  return f.load(true);
}

}  // namespace kforge
