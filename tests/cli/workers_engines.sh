#!/usr/bin/env bash
# Workers started by real engines, run by this test under the build tree and stopped by their pids
# (tests/cli/services.sh). ENGINE:
#   ssh    Debian's sshd on 127.0.0.1 with keys made for the test: `workers check ssh:HOST:2` lists
#          two workers, and a search on them evaluates exactly --evals kernels, each once, on both.
#   slurm  a single-node cluster (munged, slurmctld, slurmd): `workers check slurm:2` and a 2-worker
#          search obtain an allocation and give it back; then `scancel` of a worker's step in the
#          middle of an evaluation: the candidate is evaluated on the other worker, nothing twice;
#          then kill -9 of a coordinator that obtained its own allocation: the job is gone from
#          squeue within 30 s.
set -u
engine=$1 kforge=$2 dir=$3 tasks=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/services.sh"
trap stop_services EXIT
rm -rf "$dir" && mkdir -p "$dir"
db=$dir/kforge.db
fail() { echo "FAIL: $*"; exit 1; }
q() { sqlite3 "$db" "$1"; }
search() { timeout 120 "$kforge" --tasks-dir "$tasks" search --suite search --seed 3 --db "$db" "$@" 2>"$dir/log"; }
check_counts() {
  local evals=$1
  [ "$(q "SELECT count(*) FROM kernel")" -eq "$evals" ] || fail "$(q "SELECT count(*) FROM kernel") kernels, not $evals"
  [ "$(q "SELECT count(*) FROM evaluation WHERE verified = 0 AND message NOT LIKE 're-verification%'")" -eq "$evals" ] ||
    fail "duplicate evaluations: $(q "SELECT kernel_key, count(*) FROM evaluation WHERE verified = 0 GROUP BY 1 HAVING count(*) > 1")"
  [ "$(q "SELECT count(*) FROM evaluation WHERE status != 'ok'")" -eq 0 ] ||
    fail "a failed evaluation: $(q "SELECT status, message FROM evaluation WHERE status != 'ok'")"
}

case $engine in
ssh)
  start_sshd "$dir/sshd" || fail "sshd did not start"
  export KFORGE_SSH="ssh -F $dir/sshd/ssh_config" KFORGE_REMOTE_KFORGE=$kforge
  out=$(timeout 60 "$kforge" workers check ssh:kforge-test:2 2>&1) || fail "workers check: $out"
  echo "$out" | grep -Eq "^ssh:kforge-test#0 +$(hostname) .* ms +cpu:" && echo "$out" | grep -q "^ssh:kforge-test#1 " ||
    fail "workers check: $out"
  search --evals 8 --workers ssh:kforge-test:2 >"$dir/out" || fail "search: $(cat "$dir/log")"
  check_counts 8
  [ "$(q "SELECT count(DISTINCT worker) FROM evaluation WHERE worker GLOB 'ssh:kforge-test#[01]@?*'")" -eq 2 ] ||
    fail "not both ssh workers: $(q "SELECT DISTINCT worker FROM evaluation")"
  # A host that refuses the login is one line, exit 2, before anything is recorded.
  out=$(timeout 60 "$kforge" workers check ssh:nobody@kforge-test 2>&1)
  [ $? -eq 2 ] && echo "$out" | grep -q "worker ssh:nobody@kforge-test#0 did not start" || fail "a refused login: $out"
  ;;
slurm)
  start_slurm "$dir/slurm" || fail "Slurm did not start"
  out=$(timeout 60 "$kforge" workers check slurm:2 2>&1) || fail "workers check: $out"
  echo "$out" | grep -q "slurm: obtained allocation" && echo "$out" | grep -Eq "^slurm#1 .* ms +cpu:" || fail "workers check: $out"
  search --evals 8 --workers slurm:2 >"$dir/out" || fail "search: $(cat "$dir/log")"
  check_counts 8
  [ "$(q "SELECT count(DISTINCT worker) FROM evaluation WHERE worker GLOB 'slurm#[01]@?*'")" -eq 2 ] ||
    fail "not both Slurm workers: $(q "SELECT DISTINCT worker FROM evaluation")"
  # Every allocation the pool obtained was given back.
  for _ in $(seq 50); do [ -z "$(squeue -h -t R,PD)" ] && break; sleep 0.2; done
  [ -z "$(squeue -h -t R,PD)" ] || fail "allocations left: $(squeue)"

  # scancel of a step whose worker is in the middle of an evaluation (it has forked its child).
  rm -f "$db"
  search --evals 8 --workers slurm:2 >"$dir/out" &
  searching=$!
  cancelled=
  for _ in $(seq 1500); do
    for step in $(squeue -h -s -o %i 2>/dev/null | grep -E '^[0-9]+\.[0-9]+$'); do
      for pid in $(scontrol listpids "$step" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}'); do
        [ "$(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)" = "$kforge worker " ] || continue
        for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
          [ "$(tr '\0' ' ' </proc/"$child"/cmdline 2>/dev/null)" = "$kforge worker " ] || continue
          scancel "$step" && cancelled=$step
          break 4
        done
      done
    done
    sleep 0.02
  done
  wait $searching || fail "search: $(cat "$dir/log")"
  [ -n "$cancelled" ] || fail "no step caught in an evaluation"
  # What srun says of a cancelled step varies ("*** STEP CANCELLED ***", or "Job step aborted ...
  # task 0: Killed" when the kill comes first): any failure of the worker, followed by the retry.
  tr '\n' ' ' <"$dir/log" | grep -q "worker slurm#[01]@[^ ]* failed (.*); trying it on another worker" ||
    fail "step $cancelled cancelled, no retry: $(cat "$dir/log")"
  check_counts 8

  # kill -9 of a coordinator on an allocation it obtained itself, once its worker's step runs.
  rm -f "$db"
  "$kforge" --tasks-dir "$tasks" search --suite search --seed 3 --db "$db" --evals 40 --workers slurm:1 \
    >/dev/null 2>"$dir/log" &
  victim=$!
  job=
  for _ in $(seq 600); do
    job=$(sed -n 's/.*slurm: obtained allocation \([0-9]*\).*/\1/p' "$dir/log")
    [ -n "$job" ] && squeue -h -s -o %i 2>/dev/null | grep -q "^$job\.[0-9]" && break
    sleep 0.1
  done
  [ -n "$job" ] && [ -n "$(squeue -h -j "$job" -t R)" ] || fail "no running allocation to leave behind: $(cat "$dir/log")"
  kill -9 "$victim" || fail "the search ended before it was killed: $(cat "$dir/log")"
  wait "$victim" 2>/dev/null
  for _ in $(seq 150); do [ -z "$(squeue -h -j "$job" -t R,PD,CG 2>/dev/null)" ] && break; sleep 0.2; done
  [ -z "$(squeue -h -j "$job" -t R,PD,CG 2>/dev/null)" ] || fail "allocation $job outlived its coordinator: $(squeue)"
  ;;
*) fail "unknown engine $engine" ;;
esac
echo "ok: $engine"
