#!/usr/bin/env bash
# Every kernel of tests/honest/ evaluates as ok under the full protocol (checks and timing).
set -u
kforge=$1 db=$2 kernels=$3
rm -f "$db" "$db"-wal "$db"-shm
failed=0
for kernel in "$kernels"/*.cpp; do
  line=$("$kforge" eval --task llm/rmsnorm --kernel "$kernel" --db "$db" 2>/dev/null | head -1)
  case "$line" in
    *" ok") echo "ok   $(basename "$kernel")" ;;
    *) echo "FAIL $(basename "$kernel"): $line"; failed=1 ;;
  esac
done
exit $failed
