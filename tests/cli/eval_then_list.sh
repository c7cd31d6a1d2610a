#!/usr/bin/env bash
# An evaluation lands in the library: eval a kernel twice, then db list shows it once, with 2
# evaluations, in both the table and the JSON; a failed evaluation is listed with its status.
set -eu
kforge=$1 db=$2 tasks=$3
rm -f "$db" "$db"-wal "$db"-shm
seed=$tasks/tiny/scale/seeds/cpu_naive.cpp
"$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$seed" --db "$db" >/dev/null
"$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$seed" --db "$db" >/dev/null
table=$("$kforge" db list --db "$db")
echo "$table"
echo "$table" | grep -Eq "tiny/scale +cpu_naive.cpp +cpu +ok +[0-9.]+ +2 "
json=$("$kforge" db list --db "$db" --json)
echo "$json" | grep -q '"evaluations": 2'
echo "$json" | grep -q '"median_us"'
[ "$(echo "$json" | grep -c '"kernel_key"')" -eq 1 ]
