// The run-time sandbox of the evaluation child, entered once the reference and the candidate are
// loaded and before either runs: resource limits, and a seccomp filter that refuses what a
// kernel never needs (new processes, programs, sockets, other processes' signals and memory,
// executable memory, writing or changing files) while OpenMP threads keep working.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
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

}  // namespace

Status enter_sandbox(const EvalOptions& options) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // No RLIMIT_FSIZE: it would also hit a stderr redirected to a file; seccomp refuses file writes.
  for (Status s : {limit(RLIMIT_CORE, 0, "core"), limit(RLIMIT_NOFILE, 64, "nofile"),
                   limit(RLIMIT_AS, options.memory_limit_bytes, "as"),
                   limit(RLIMIT_CPU, static_cast<rlim_t>(options.timeout_s * cores) + 10, "cpu")})
    if (!s) return s;

  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return make_error(ErrorKind::internal, "seccomp_init failed");
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  const auto own = static_cast<scmp_datum_t>(getpid());
  int rc = 0;
  auto rule = [&](uint32_t action, int syscall, unsigned count = 0, scmp_arg_cmp a = {}, scmp_arg_cmp b = {}) {
    if (rc != 0) return;
    if (count == 0) rc = seccomp_rule_add(ctx, action, syscall, 0);
    if (count == 1) rc = seccomp_rule_add(ctx, action, syscall, 1, a);
    if (count == 2) rc = seccomp_rule_add(ctx, action, syscall, 2, a, b);
  };
  // Processes and programs. Threads (clone with CLONE_THREAD) stay allowed for OpenMP; clone3's
  // flags sit in memory a filter cannot read, so it answers ENOSYS and glibc falls back to clone.
  for (int sc : {SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(execve), SCMP_SYS(execveat)}) rule(deny, sc);
  rule(deny, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
  rule(SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3));
  // Network, other processes, limits.
  for (int sc : {SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
                 SCMP_SYS(process_vm_writev), SCMP_SYS(setrlimit), SCMP_SYS(prlimit64), SCMP_SYS(seccomp)})
    rule(deny, sc);
  // Signals: abort() signals itself, which stays allowed; no other process may be signalled.
  for (int sc : {SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(rt_sigqueueinfo), SCMP_SYS(rt_tgsigqueueinfo)})
    rule(deny, sc, 1, SCMP_A0(SCMP_CMP_NE, own));
  for (int sc : {SCMP_SYS(tkill), SCMP_SYS(pidfd_send_signal), SCMP_SYS(pidfd_open)}) rule(deny, sc);
  // No new executable memory: the code that runs is the code that was checked and compiled. The
  // loader maps the kernels' files executable (the sandbox is entered before they load, so their
  // static constructors run inside it); anonymous executable memory and mprotect to exec stay refused.
  rule(deny, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
  rule(deny, SCMP_SYS(mmap), 2, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC),
       SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, MAP_ANONYMOUS));
  rule(deny, SCMP_SYS(pkey_mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
  // Files: reading is harmless (and the loader is done); writing, creating or changing is not.
  for (int flag : {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC}) {
    rule(deny, SCMP_SYS(open), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag), static_cast<scmp_datum_t>(flag)));
    rule(deny, SCMP_SYS(openat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag), static_cast<scmp_datum_t>(flag)));
  }
  // openat2's flags sit in memory a filter cannot read, like clone3's: ENOSYS sends glibc back to
  // openat. io_uring would do all of the above without system calls of its own.
  for (int sc : {SCMP_SYS(openat2), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register)})
    rule(SCMP_ACT_ERRNO(ENOSYS), sc);
  for (int sc : {SCMP_SYS(mknod), SCMP_SYS(mknodat), SCMP_SYS(name_to_handle_at), SCMP_SYS(open_by_handle_at),
                 SCMP_SYS(creat), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat),
                 SCMP_SYS(renameat2), SCMP_SYS(mkdir), SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(truncate),
                 SCMP_SYS(ftruncate), SCMP_SYS(link), SCMP_SYS(linkat), SCMP_SYS(symlink), SCMP_SYS(symlinkat),
                 SCMP_SYS(chmod), SCMP_SYS(fchmod), SCMP_SYS(fchmodat), SCMP_SYS(chown), SCMP_SYS(fchown),
                 SCMP_SYS(lchown), SCMP_SYS(fchownat)})
    rule(deny, sc);
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) return make_error(ErrorKind::internal, "seccomp: {}", std::strerror(-rc));
  return {};
}

}  // namespace kforge
