#!/usr/bin/env bash
# `kforge worker` by hand: framed requests on stdin ("<byte count>\n<JSON>"), framed answers on
# stdout; a malformed frame ends it with a message and a non-zero exit, end of input with 0.
set -u
kforge=$1 failed=0
frame() { printf '%s\n%s' "${#1}" "$1"; }
out=$({ frame '{"type":"ping"}'; frame '{"type":"eval"}'; frame 'not json'; } | "$kforge" worker)
code=$?
echo "$out"
[ $code -eq 0 ] || { echo "FAIL: exit $code after a clean end of input"; failed=1; }
printf '%s' "$out" | grep -q '"pong":true' || { echo "FAIL: no pong"; failed=1; }
printf '%s' "$out" | grep -q 'malformed eval request' || { echo "FAIL: an incomplete eval request was not refused"; failed=1; }
printf '%s' "$out" | grep -q 'not a JSON object' || { echo "FAIL: garbage was not refused"; failed=1; }
err=$(printf 'xyz\n{}' | "$kforge" worker 2>&1 >/dev/null)
code=$?
[ $code -eq 2 ] && printf '%s' "$err" | grep -q 'malformed frame header' ||
  { echo "FAIL: a bad frame header gave exit $code and '$err'"; failed=1; }
exit $failed
