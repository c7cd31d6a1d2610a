#!/usr/bin/env bash
# Every kernel of tests/cheats/ ends in the status its "// expect:" comment names (never ok), for
# the reason its "// expect-message:" names, and the kernel library stays intact, holding every
# evaluation.
set -u
kforge=$1 db=$2 cheats=$3
rm -f "$db" "$db"-wal "$db"-shm
failed=0 count=0
for kernel in "$cheats"/*.cpp; do
  want=$(sed -n 's|^// expect: *||p' "$kernel")
  # One "// expect-message:" line or more: the message must hold one of them (grep -F takes each
  # line as a pattern of its own). A thread left running is caught by whichever check sees its
  # late writes first: the re-comparison after the reference, the determinism re-run, or the
  # held-out shape's check.
  want_message=$(sed -n 's|^// expect-message: *||p' "$kernel")
  json=$("$kforge" eval --task llm/rmsnorm --kernel "$kernel" --db "$db" --json 2>/dev/null)
  got=$(printf '%s\n' "$json" | sed -n 's|^  "status": "\(.*\)",|\1|p')
  message=$(printf '%s\n' "$json" | sed -n 's|^  "message": "\(.*\)",|\1|p')
  count=$((count + 1))
  if [ "$got" = "$want" ] && printf '%s' "$message" | grep -qF -- "$want_message"; then
    echo "ok   $(basename "$kernel"): $got: $message"
  else
    echo "FAIL $(basename "$kernel"): status '$got' ('$message'), wanted '$want' ('$want_message')"; failed=1
  fi
done
[ "$(sqlite3 "$db" 'PRAGMA quick_check')" = ok ] || { echo "library corrupt"; failed=1; }
stored=$(sqlite3 "$db" "SELECT count(*) FROM evaluation WHERE status != 'ok'")
[ "$stored" = "$count" ] || { echo "library holds $stored failed evaluations, wanted $count"; failed=1; }
exit $failed
