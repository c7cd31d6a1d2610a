#!/usr/bin/env bash
# `kforge search --resume` after kill -9: the run continues with its saved options, keeps what was
# stored, evaluates nothing twice, and ends with exactly the planned number of kernels.
set -eu
kforge=$1 db=$2 tasks=$3
rm -f "$db" "$db"-wal "$db"-shm
"$kforge" --tasks-dir "$tasks" search --suite search --evals 9 --seed 3 --db "$db" >/dev/null 2>&1 &
victim=$!
count() { sqlite3 "$db" "SELECT count(DISTINCT kernel_key) FROM evaluation" 2>/dev/null || echo 0; }
for _ in $(seq 600); do
  [ "$(count)" -ge 3 ] && break
  sleep 0.05
done
kill -9 "$victim"
wait "$victim" 2>/dev/null || true
before=$(count)
[ "$before" -ge 3 ] && [ "$before" -lt 9 ] || { echo "killed after $before kernels, not in between"; exit 1; }
sqlite3 "$db" "PRAGMA integrity_check" | grep -qx ok
# The run is unfinished; a resume with other options keeps the saved ones.
out=$("$kforge" --tasks-dir "$tasks" search --resume --evals 2 --db "$db" 2>&1)
echo "$out" | grep -Eq "search/scale +9 +9 +0 " || { echo "$out"; exit 1; }
[ "$(count)" -eq 9 ] || { echo "$(count) kernels after the resume"; exit 1; }
[ "$(sqlite3 "$db" "SELECT count(*) FROM kernel WHERE operator = 'seed'")" -eq 2 ]
[ "$(sqlite3 "$db" "SELECT count(*) FROM run WHERE ended_at IS NULL")" -eq 0 ]
# Nothing is left to resume.
"$kforge" --tasks-dir "$tasks" search --resume --db "$db" 2>&1 | grep -q "no unfinished search run"
