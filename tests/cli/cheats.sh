#!/usr/bin/env bash
# Every kernel of tests/cheats/ ends in the status its "// expect:" comment names (never ok),
# and the kernel library stays intact, holding every evaluation.
set -u
kforge=$1 db=$2 cheats=$3
rm -f "$db" "$db"-wal "$db"-shm
failed=0 count=0
for kernel in "$cheats"/*.cpp; do
  want=$(sed -n 's|^// expect: *||p' "$kernel")
  got=$("$kforge" eval --task llm/rmsnorm --kernel "$kernel" --db "$db" --json 2>/dev/null |
        sed -n 's|^  "status": "\(.*\)",|\1|p')
  count=$((count + 1))
  if [ "$got" = "$want" ]; then echo "ok   $(basename "$kernel"): $got"
  else echo "FAIL $(basename "$kernel"): status '$got', wanted '$want'"; failed=1; fi
done
[ "$(sqlite3 "$db" 'PRAGMA quick_check')" = ok ] || { echo "library corrupt"; failed=1; }
stored=$(sqlite3 "$db" "SELECT count(*) FROM evaluation WHERE status != 'ok'")
[ "$stored" = "$count" ] || { echo "library holds $stored failed evaluations, wanted $count"; failed=1; }
exit $failed
