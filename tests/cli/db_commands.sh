#!/usr/bin/env bash
# Every `kforge db` command on a small library: two evaluations of one kernel (the first, a new
# best, re-verified in a fresh worker: three rows, published) in a.db, a wrong kernel in b.db; then list, show, best, history,
# stats, export (file and directory), import, merge and verify, each also with --json; a corrupt
# input is refused and left as it was.
set -eu
kforge=$1 dir=$2 tasks=$3
rm -rf "$dir"; mkdir -p "$dir"
seed=$tasks/tiny/scale/seeds/cpu_naive.cpp
eval_into() { "$kforge" eval --tasks-dir "$tasks" --task tiny/scale --kernel "$1" --db "$2" >/dev/null; }
eval_into "$seed" "$dir/a.db"
eval_into "$seed" "$dir/a.db"
sed 's/alpha \* x\[i\]/alpha + x[i]/' "$seed" > "$dir/broken.cpp"
if eval_into "$dir/broken.cpp" "$dir/b.db"; then echo "a wrong kernel exited 0"; exit 1; fi
eval_into "$seed" "$dir/b.db"
db() { echo "+ kforge db $*" >&2; "$kforge" db "$@"; }

db list --db "$dir/b.db" --status incorrect | grep -Eq "tiny/scale +broken.cpp +cpu +incorrect"
[ "$(db list --db "$dir/b.db" --backend cuda | grep -c tiny/scale || true)" -eq 0 ]
key=$(db list --db "$dir/a.db" --json | sed -n 's/.*"kernel_key": "\([0-9a-f]*\)".*/\1/p' | head -1)
db show "${key:0:8}" --db "$dir/a.db" | grep -Eq "^evaluations: 3"
db show "${key:0:8}" --db "$dir/a.db" | grep -q "extern \"C\""
db show "$key" --db "$dir/a.db" --json | grep -q '"roofline_pct"'
db show nothing --db "$dir/a.db" 2>&1 | grep -q "no kernel nothing"
db best --db "$dir/a.db" | grep -Eq "tiny/scale/v1/f32/N=1024 +exact +${key:0:12}"
db best --db "$dir/a.db" --device nvidia:sm_90:132 | grep -Eq "N=1024 +none"
db best --db "$dir/a.db" --json | grep -q '"match": "exact"'
db history --task tiny/scale --db "$dir/a.db" | grep -c " ok " | grep -q 3
db history --task tiny/scale --db "$dir/a.db" --json | grep -q best_so_far_us
db stats --db "$dir/a.db" | grep -Eq "^best +1 \(0 stale\)"
db stats --db "$dir/a.db" --json | grep -q '"schema_version": 7'

db export --db "$dir/a.db" --out "$dir/snapshot.db" | grep -q "exported 1 kernels"
db export --db "$dir/a.db" --out "$dir/snapshot.db" 2>&1 | grep -q "exists; export writes a new file"
db export --db "$dir/a.db" --out "$dir/kernels" --json | grep -q '"kernels": 1'
ls "$dir"/kernels/tiny/scale/*_cpu_naive.cpp "$dir"/kernels/tiny/scale/*_cpu_naive.json >/dev/null

db merge "$dir/a.db" "$dir/b.db" --out "$dir/c.db" | grep -q "c.db: 1 published rows"
[ "$(db list --db "$dir/c.db" --json | grep -c '"kernel_key"')" -eq 2 ]
db list --db "$dir/c.db" | grep -Eq "cpu_naive.cpp +cpu +ok .* 5 "
db import "$dir/a.db" --db "$dir/c.db" | grep -q "added 0 kernels, 0 evaluations, 0 measurements"
db import "$dir/snapshot.db" --db "$dir/d.db" --json | grep -q '"evaluations": 3'
db verify --db "$dir/c.db" | grep -q "^ok: "
db verify --db "$dir/c.db" --json | grep -q '"ok": true'

# A corrupt or foreign input: one clear line, exit 2, nothing written, no output file.
head -c 3000 "$dir/snapshot.db" > "$dir/corrupt.db"
before=$(md5sum < "$dir/corrupt.db")
db merge "$dir/a.db" "$dir/corrupt.db" --out "$dir/e.db" 2>&1 | grep -Eq "corrupt.db: .*(malformed|not a database|corrupt)"
[ ! -e "$dir/e.db" ] && [ "$(md5sum < "$dir/corrupt.db")" = "$before" ]
db stats --db "$dir/corrupt.db" 2>&1 | grep -q "corrupt.db"
echo "all db commands ok"

# gc removes no kernel, evaluation or measurement, and migrates nothing away.
db gc --db "$dir/c.db" | grep -Eq "removed [0-9]+ unused problems, 1 envs"
db stats --db "$dir/c.db" --json | grep -q '"kernels": 2'
db verify --db "$dir/c.db" | grep -q "^ok: "
echo "gc ok"
