#!/usr/bin/env bash
# A killed kforge loses nothing finished and corrupts nothing: kill -9 it in the middle of
# evaluating an endless kernel, then its evaluation child must be gone, the library must pass
# an integrity check with its earlier evaluation intact, and the next eval must work.
set -eu
kforge=$1 db=$2 tasks=$3 kernels=$4
rm -f "$db" "$db"-wal "$db"-shm
seed=$tasks/llm/rmsnorm/seeds/cpu_naive.cpp
"$kforge" eval --task llm/rmsnorm --kernel "$seed" --check-only --db "$db" >/dev/null

"$kforge" eval --task llm/rmsnorm --kernel "$kernels/rmsnorm_endless.cpp" --db "$db" >/dev/null 2>&1 &
victim=$!
# Wait until the evaluation child runs (it is the second process with these arguments).
for _ in $(seq 100); do
  [ "$(pgrep -fc -- "--db $db")" -ge 2 ] && break
  sleep 0.1
done
[ "$(pgrep -fc -- "--db $db")" -ge 2 ] || { echo "the evaluation child never started"; exit 1; }
kill -9 "$victim"
wait "$victim" 2>/dev/null || true
sleep 0.5
if pgrep -f -- "--db $db" >/dev/null; then
  echo "an evaluation child outlived its killed parent:"; pgrep -af -- "--db $db"; exit 1
fi
[ "$(sqlite3 "$db" 'PRAGMA quick_check')" = ok ]
[ "$(sqlite3 "$db" "SELECT count(*) FROM evaluation WHERE status = 'ok'")" = 1 ]
"$kforge" eval --task llm/rmsnorm --kernel "$seed" --check-only --db "$db" >/dev/null
[ "$(sqlite3 "$db" 'SELECT count(*) FROM evaluation')" = 2 ]
echo "library intact after kill -9"
