#!/usr/bin/env bash
# An evaluation lands in the library: eval a kernel twice, then db list shows it once with 3
# evaluations (the first, a new best, is re-verified in a fresh worker; the second needs not be),
# in both the table and the JSON; a failed evaluation is listed with its status.
set -eu
kforge=$1 db=$2 tasks=$3
rm -f "$db" "$db"-wal "$db"-shm
seed=$tasks/tiny/scale/seeds/cpu_naive.cpp
"$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$seed" --db "$db" >/dev/null
"$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$seed" --db "$db" >/dev/null
table=$("$kforge" db list --db "$db")
echo "$table"
echo "$table" | grep -Eq "tiny/scale +cpu_naive.cpp +cpu +ok +[0-9.]+ +[0-9.]+x +3 "
json=$("$kforge" db list --db "$db" --json)
echo "$json" | grep -q '"evaluations": 3'
echo "$json" | grep -q '"median_us"'
[ "$(echo "$json" | grep -c '"kernel_key"')" -eq 1 ]

# A failed evaluation is stored and listed with its status.
broken=$(dirname "$db")/eval-then-list-broken.cpp
sed 's/alpha \* x\[i\]/alpha + x[i]/' "$seed" > "$broken"
if "$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$broken" --db "$db" >/dev/null; then
  echo "a wrong kernel exited 0"; exit 1
fi
"$kforge" db list --db "$db" | grep -Eq "tiny/scale +eval-then-list-broken.cpp +cpu +incorrect +- +- +1 "
[ "$("$kforge" db list --db "$db" --json | grep -c '"kernel_key"')" -eq 2 ]
