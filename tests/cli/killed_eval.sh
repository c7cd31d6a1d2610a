#!/usr/bin/env bash
# A killed kforge loses nothing finished and corrupts nothing: kill -9 it in the middle of
# evaluating an endless kernel, then its worker and the worker's evaluation child must be gone, the library must pass
# an integrity check with its earlier evaluation intact, and the next eval must work.
set -eu
kforge=$1 db=$2 tasks=$3 kernels=$4
rm -f "$db" "$db"-wal "$db"-shm
seed=$tasks/llm/rmsnorm/seeds/cpu_naive.cpp
"$kforge" eval --task llm/rmsnorm --kernel "$seed" --check-only --db "$db" >/dev/null

"$kforge" eval --task llm/rmsnorm --kernel "$kernels/rmsnorm_endless.cpp" --db "$db" >/dev/null 2>&1 &
victim=$!
# Wait until the kernel runs: kforge -> its worker (`kforge worker`) -> the evaluation child.
worker='' child=''
for _ in $(seq 200); do
  worker=$(pgrep -P "$victim" -f "kforge worker" || true)
  [ -n "$worker" ] && child=$(pgrep -P "$worker" || true)
  [ -n "$child" ] && break
  sleep 0.1
done
[ -n "$child" ] || { echo "the evaluation never started (worker '$worker')"; exit 1; }
kill -9 "$victim"
wait "$victim" 2>/dev/null || true
sleep 0.5
for pid in $worker $child; do
  state=$(ps -o stat= -p "$pid" || true)
  if [ -n "$state" ] && [ "${state#Z}" = "$state" ]; then  # a zombie (PID 1 may not reap) is gone
    echo "process $pid outlived its killed kforge:"; ps -o pid,ppid,args -p "$pid"; exit 1
  fi
done
[ "$(sqlite3 "$db" 'PRAGMA quick_check')" = ok ]
[ "$(sqlite3 "$db" "SELECT count(*) FROM evaluation WHERE status = 'ok'")" = 1 ]
"$kforge" eval --task llm/rmsnorm --kernel "$seed" --check-only --db "$db" >/dev/null
[ "$(sqlite3 "$db" 'SELECT count(*) FROM evaluation')" = 2 ]
echo "library intact after kill -9"
