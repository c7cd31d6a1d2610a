#!/usr/bin/env bash
# Every probe in tests/sandbox/ evaluates as ok (all its escapes failed) and leaves no trace.
set -u
kforge=$1 db=$2 probes=$3
rm -f "$db" "$db"-wal "$db"-shm /tmp/kforge-sandbox-escape-*
failed=0
for kernel in "$probes"/*.cpp; do
  line=$("$kforge" eval --task llm/rmsnorm --kernel "$kernel" --check-only --db "$db" 2>&1 | head -1)
  case "$line" in
    *" ok") echo "ok   $(basename "$kernel")" ;;
    *) echo "FAIL $(basename "$kernel"): $line"; failed=1 ;;
  esac
done
if ls /tmp/kforge-sandbox-escape-* >/dev/null 2>&1; then echo "FAIL: a probe created files"; failed=1; fi
exit $failed
