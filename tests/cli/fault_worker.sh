#!/bin/sh
# fault_worker.sh SIGNAL MARKER KFORGE: `KFORGE worker`, which sends itself SIGNAL in the middle of
# its first evaluation (once it has forked the evaluation's child, a process of the same command
# line); only the first time it starts for MARKER (a folder it makes), every time when MARKER is "".
sig=$1 marker=$2 kforge=$3
if [ -z "$marker" ] || mkdir "$marker" 2>/dev/null; then
  me=$$
  (
    while kill -0 "$me" 2>/dev/null; do
      for c in $(cat /proc/"$me"/task/*/children 2>/dev/null); do
        if [ "$(tr '\0' ' ' </proc/"$c"/cmdline 2>/dev/null)" = "$kforge worker " ]; then
          kill -"$sig" "$me"
          exit 0
        fi
      done
      sleep 0.01
    done
  ) </dev/null >/dev/null 2>&1 &  # not on the worker's channel: its end must be seen at once
fi
exec "$kforge" worker
