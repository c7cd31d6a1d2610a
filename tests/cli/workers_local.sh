#!/usr/bin/env bash
# `kforge search --workers` on this machine. MODE:
#   pool   bad specs are refused (exit 2, one line); `workers check local:2` lists two workers; a
#          2-worker search evaluates exactly --evals kernels, each once, on both workers, each result
#          filed under its worker and device, a new best re-verified on the other worker; `eval
#          --workers` evaluates a task's seeds on the pool.
#   kill   a worker killed with kill -9 in the middle of an evaluation: the candidate is evaluated
#          again on the other worker, the count holds, nothing twice, nothing recorded as a crash.
#   hang   a worker that stops answering mid-evaluation (SIGSTOP): the same, once the deadline passes.
#   resume kill -9 of the coordinator of a 2-worker search, then `--resume`: every kernel evaluated
#          once, none lost, the run ends.
#   lost   the only worker dies on every evaluation: retried once, recorded naming the worker, then
#          retired; the run ends interrupted, and `--resume` on a good worker completes it with
#          nothing evaluated twice.
#   remote a worker that cannot see the coordinator's files (another user, `cmd:runuser -u nobody`,
#          its own compile cache; the coordinator's cache and tasks are root's, mode 0700): `eval`
#          and a search evaluate correctly on it from the files the requests carry.
#   arch   a worker whose cpu target differs (`kforge worker --arch x86-64-v2`, its own compile
#          cache) beside a native one: `workers check` says which compiles for itself; in an eval
#          and a search it compiles every candidate itself and receives no binary, the native
#          worker receives them; its results carry its own device key; a kernel that does not
#          compile for its target is a compile_error from it. A bad --arch is one line, exit 2.
set -u
mode=$1 kforge=$2 dir=$3 tasks=$4
rm -rf "$dir" && mkdir -p "$dir"
db=$dir/kforge.db
fail() { echo "FAIL: $*"; exit 1; }
q() { sqlite3 "$db" "$1"; }
search() { timeout 120 "$kforge" --tasks-dir "$tasks" search --suite search --seed 3 --db "$db" "$@" 2>"$dir/log"; }
# Every kernel evaluated once, apart from re-verifications; `evals` of them.
check_counts() {
  local evals=$1
  [ "$(q "SELECT count(*) FROM kernel")" -eq "$evals" ] || fail "$(q "SELECT count(*) FROM kernel") kernels, not $evals"
  [ "$(q "SELECT count(*) FROM evaluation WHERE verified = 0 AND message NOT LIKE 're-verification%'")" -eq "$evals" ] ||
    fail "duplicate evaluations: $(q "SELECT kernel_key, count(*) FROM evaluation WHERE verified = 0 GROUP BY 1 HAVING count(*) > 1")"
}
# A worker (cmd:) that sends itself SIGNAL in the middle of its first evaluation, once per MARKER.
here=$(cd "$(dirname "$0")" && pwd)
fault_worker() { echo "cmd:$here/fault_worker.sh $1 '$2' $kforge"; }

case $mode in
pool)
  for spec in local:0 local:x ssh: slurm:two foo:1 "local:1,,local:1"; do
    out=$("$kforge" workers check "$spec" 2>&1)
    code=$?
    [ $code -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q -- "--workers" ||
      fail "spec '$spec': exit $code, '$out'"
  done
  "$kforge" --tasks-dir "$tasks" search --suite search --db "$db" --workers nope:1 >/dev/null 2>"$dir/log"
  [ $? -eq 2 ] && grep -q "unknown kind 'nope'" "$dir/log" || fail "search with a bad spec: $(cat "$dir/log")"
  [ ! -e "$db" ] || [ "$(q "SELECT count(*) FROM run")" -eq 0 ] || fail "a refused search recorded a run"
  out=$(timeout 60 "$kforge" workers check local:2) || fail "workers check: $out"
  echo "$out" | grep -Eq "^local#0 .* [0-9.]+ ms +cpu:" && echo "$out" | grep -q "^local#1 " ||
    fail "workers check: $out"
  search --evals 10 --workers local:2 >"$dir/out" || fail "search: $(cat "$dir/log")"
  check_counts 10
  [ "$(q "SELECT count(DISTINCT worker) FROM evaluation")" -eq 2 ] || fail "not both workers: $(q "SELECT DISTINCT worker FROM evaluation")"
  [ "$(q "SELECT count(*) FROM evaluation WHERE worker NOT GLOB 'local#[01]@?*' OR device_key NOT GLOB 'cpu:?*'")" -eq 0 ] ||
    fail "an evaluation without its worker or device: $(q "SELECT worker, device_key FROM evaluation")"
  # A re-verification ran on the other worker than the evaluation it checks.
  [ "$(q "SELECT count(*) FROM evaluation a JOIN evaluation b ON a.kernel_key = b.kernel_key AND a.verified = 0
          AND b.verified = 1 AND a.worker = b.worker")" -eq 0 ] || fail "a re-verification on the same worker"
  [ "$(q "SELECT count(*) FROM evaluation WHERE verified = 1")" -ge 1 ] || fail "no re-verified best"
  # eval --workers: a task's seeds at once, each filed under the worker that ran it.
  rm -f "$db"
  out=$(timeout 120 "$kforge" --tasks-dir "$tasks" eval --task search/scale --check-only --db "$db" --workers local:2 2>&1) ||
    fail "eval: $out"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status = 'ok' AND worker GLOB 'local#[01]@?*'")" -eq 2 ] ||
    fail "eval --workers: $(q "SELECT worker, status FROM evaluation")"
  ;;
kill | hang)
  signal=KILL timeout=180
  [ "$mode" = hang ] && signal=STOP timeout=2  # the worker's deadline is --timeout + 30 s
  search --evals 6 --timeout $timeout --workers local:1 --workers "$(fault_worker $signal "$dir/hit")" >"$dir/out" ||
    fail "search: $(cat "$dir/log")"
  check_counts 6
  want="killed by SIGKILL|exited with code 137"  # the worker itself, or the sh -c that started it
  [ "$mode" = hang ] && want="no answer within 32 s"
  grep -Eq "worker cmd#0@.* failed \(.*($want).*\); trying it on another worker" "$dir/log" || fail "no retry: $(cat "$dir/log")"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status != 'ok'")" -eq 0 ] ||
    fail "a failed evaluation: $(q "SELECT status, message FROM evaluation WHERE status != 'ok'")"
  [ "$(q "SELECT count(DISTINCT worker) FROM evaluation")" -eq 2 ] || fail "the restarted worker was not used again"
  ;;
lost)
  search --evals 6 --workers "$(fault_worker KILL "")" >"$dir/out"
  code=$?
  [ $code -eq 1 ] && grep -q "interrupted: continue with  kforge search --resume" "$dir/out" || fail "exit $code: $(cat "$dir/out" "$dir/log")"
  grep -q "worker cmd#0@.* failed 3 times in a row: retired (0 left)" "$dir/log" || fail "not retired: $(cat "$dir/log")"
  # The first seed failed on the worker twice: recorded, naming it; the second was never finished.
  [ "$(q "SELECT count(*) FROM evaluation")" -eq 1 ] || fail "$(q "SELECT count(*) FROM evaluation") evaluations recorded"
  q "SELECT message FROM evaluation" | grep -Eq "(killed by SIGKILL|exited with code 137).* \(worker cmd#0@.*, after a retry\)" || fail "$(q "SELECT message FROM evaluation")"
  search --resume --workers local:1 >"$dir/out" || fail "resume: $(cat "$dir/log")"
  check_counts 6
  [ "$(q "SELECT count(*) FROM run WHERE ended_at IS NULL")" -eq 0 ] || fail "the run did not end"
  ;;
resume)
  # kill -9 of the coordinator while two workers evaluate, then --resume on other workers.
  "$kforge" --tasks-dir "$tasks" search --suite search --seed 3 --evals 10 --db "$db" --workers local:2 >/dev/null 2>&1 &
  victim=$!
  for _ in $(seq 1200); do
    [ "$(q "SELECT count(DISTINCT kernel_key) FROM evaluation" 2>/dev/null || echo 0)" -ge 4 ] && break
    sleep 0.05
  done
  kill -9 "$victim"
  wait "$victim" 2>/dev/null
  before=$(q "SELECT count(*) FROM kernel")
  [ "$before" -ge 4 ] && [ "$before" -lt 10 ] || fail "killed after $before kernels, not in between"
  search --resume --workers local:1,local:1 >"$dir/out" || fail "resume: $(cat "$dir/log")"
  check_counts 10
  [ "$(q "SELECT count(*) FROM run WHERE ended_at IS NULL")" -eq 0 ] || fail "the run did not end"
  ;;
remote)
  # The worker's side: a copy of kforge and a home of its own, where nobody can reach them.
  away=$(mktemp -d /tmp/kforge-remote.XXXXXX) || fail "mktemp"
  trap 'rm -rf "$away"' EXIT
  cp "$kforge" "$away/kforge" && mkdir "$away/home" && chown nobody "$away/home" && chmod 755 "$away" || fail "setup"
  # The coordinator's side: root's alone.
  cp -r "$tasks" "$dir/tasks" && mkdir "$dir/cache" && chmod 700 "$dir" "$dir/cache" "$dir/tasks" || fail "setup"
  export KFORGE_CACHE_DIR=$dir/cache
  runuser -u nobody -- test -r "$dir/tasks/search/scale/task.toml" && fail "nobody reads the coordinator's files"
  spec="cmd:runuser -u nobody -- env HOME=$away/home KFORGE_CACHE_DIR=$away/home/cache $away/kforge worker"
  out=$(timeout 120 "$kforge" --tasks-dir "$dir/tasks" eval --task search/scale --check-only --db "$db" --workers "$spec" 2>&1) ||
    fail "eval: $out"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status = 'ok' AND worker GLOB 'cmd#0@?*'")" -eq 2 ] ||
    fail "eval on the remote worker: $(q "SELECT worker, status, message FROM evaluation")"
  rm -f "$db"
  timeout 120 "$kforge" --tasks-dir "$dir/tasks" search --suite search --seed 3 --db "$db" --evals 4 --workers "$spec" \
    >"$dir/out" 2>"$dir/log" || fail "search: $(cat "$dir/log")"
  [ "$(q "SELECT count(*) FROM evaluation WHERE verified = 0 AND status = 'ok' AND worker GLOB 'cmd#0@?*'")" -eq 4 ] ||
    fail "search on the remote worker: $(q "SELECT worker, status, message FROM evaluation")"
  # What it ran came in the requests, into its own store.
  [ "$(find "$away/home/cache/received" -maxdepth 1 -type f -user nobody | wc -l)" -ge 4 ] || fail "nothing received"
  ;;
arch)
  out=$("$kforge" worker --arch bogus </dev/null 2>&1)
  code=$?
  [ $code -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^kforge: cpu: arch bogus: .* refuses -march=bogus: .*bogus" ||
    fail "worker --arch bogus: exit $code, '$out'"
  export KFORGE_CACHE_DIR=$dir/cache  # the coordinator's and the native worker's
  spec="cmd:env KFORGE_CACHE_DIR=$dir/wcache $kforge worker --arch x86-64-v2"
  out=$(timeout 60 "$kforge" workers check local:1 "$spec") || fail "workers check: $out"
  echo "$out" | grep -Eq "^local#0 +target native:[^ ]+: the same, receives binaries" &&
    echo "$out" | grep -Eq "^cmd#0 +target x86-64-v2: differs, compiles for itself" || fail "workers check: $out"
  # eval: the task's two seeds at once, one on each worker (correctness only: exact statuses).
  out=$(timeout 120 "$kforge" --tasks-dir "$tasks" eval --task search/scale --check-only --db "$db" \
    --workers local:1 --workers "$spec" 2>&1) || fail "eval: $out"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status = 'ok'")" -eq 2 ] &&
    [ "$(q "SELECT count(*) FROM evaluation WHERE worker GLOB 'cmd#0@*' AND device_key GLOB 'cpu:?*:x86-64-v2'")" -eq 1 ] &&
    [ "$(q "SELECT count(*) FROM evaluation WHERE worker GLOB 'local#0@*' AND device_key NOT GLOB '*:x86-64-v2'")" -eq 1 ] ||
    fail "eval: $(q "SELECT worker, device_key, status, message FROM evaluation")"
  # A search (timed: a busy machine may reject a timing, so only what compiled where is asserted).
  rm -f "$db"
  search --evals 8 --workers local:1 --workers "$spec" >"$dir/out" || fail "search: $(cat "$dir/log")"
  grep -q "worker cmd#0@.*:x86-64-v2, .*compiles for itself (target x86-64-v2)" "$dir/log" || fail "log: $(cat "$dir/log")"
  # Each result names its worker's device key: the other target's apart from the native one's.
  on_arch=$(q "SELECT count(*) FROM evaluation WHERE worker GLOB 'cmd#0@*' AND device_key GLOB 'cpu:?*:x86-64-v2'")
  [ "$on_arch" -ge 1 ] && [ "$(q "SELECT count(*) FROM evaluation WHERE worker GLOB 'cmd#0@*'")" -eq "$on_arch" ] &&
    [ "$(q "SELECT count(*) FROM evaluation WHERE worker GLOB 'local#0@*' AND device_key NOT GLOB '*:x86-64-v2'")" -ge 1 ] ||
    fail "device keys: $(q "SELECT worker, device_key FROM evaluation")"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status IN ('compile_error', 'crash', 'runtime_error', 'timeout')")" -eq 0 ] ||
    fail "a failed evaluation: $(q "SELECT worker, status, message FROM evaluation WHERE status != 'ok'")"
  # It compiled its candidates, the reference and the probe itself, and was sent no binary; the
  # native worker was sent binaries (into the store it shares with the coordinator here).
  elf() { for f in "$1"/*; do [ -f "$f" ] && [ "$(head -c 4 "$f" | tail -c 3)" = ELF ] && echo "$f"; done | wc -l; }
  # (Per kernel, not per evaluation: a re-verification that lands on the same worker hits its cache.)
  arch_kernels=$(q "SELECT count(DISTINCT kernel_key) FROM evaluation WHERE worker GLOB 'cmd#0@*'")
  [ "$(ls "$dir/wcache/cpu/"*.so 2>/dev/null | wc -l)" -ge $((arch_kernels + 2)) ] ||
    fail "the worker compiled $(ls "$dir/wcache/cpu/"*.so 2>/dev/null | wc -l) binaries for $arch_kernels kernels"
  [ "$(elf "$dir/wcache/received")" -eq 0 ] || fail "the self-compiling worker was sent binaries"
  [ "$(elf "$dir/cache/received")" -ge 3 ] || fail "the native worker was sent no binaries"
  # A kernel that its target cannot compile: compile_error from it, with the compiler's reason.
  rm -f "$db"
  out=$(timeout 120 "$kforge" --tasks-dir "$tasks" eval --task search/scale --kernel "$here/../kernels/scale_avx2.cpp" \
    --check-only --db "$db" --workers "$spec" 2>&1)
  [ $? -eq 1 ] || fail "eval on the x86-64-v2 worker: $out"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status = 'compile_error' AND worker GLOB 'cmd#0@*'
          AND message LIKE '%target specific option mismatch%'")" -eq 1 ] ||
    fail "no compile_error: $(q "SELECT worker, status, message FROM evaluation")"
  if grep -qw avx2 /proc/cpuinfo; then  # natively it compiles, and is right
    rm -f "$db"
    out=$(timeout 120 "$kforge" --tasks-dir "$tasks" eval --task search/scale --kernel "$here/../kernels/scale_avx2.cpp" \
      --check-only --db "$db" --workers local:1 2>&1) || fail "eval on the native worker: $out"
  fi
  ;;
*) fail "unknown mode $mode" ;;
esac
echo "ok: $mode"
