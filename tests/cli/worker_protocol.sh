#!/usr/bin/env bash
# `kforge worker` by hand: framed requests on stdin ("<byte count>\n<JSON>"), framed answers on
# stdout; a malformed frame ends it with a message and a non-zero exit, end of input with 0.
set -u
kforge=$1 failed=0
task=$(cd "$(dirname "$0")/../data/tasks/tiny/scale" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
frame() { printf '%s\n%s' "${#1}" "$1"; }
out=$({ frame '{"type":"ping"}'; frame '{"type":"eval"}'; frame 'not json'; } | "$kforge" worker)
code=$?
echo "$out"
[ $code -eq 0 ] || { echo "FAIL: exit $code after a clean end of input"; failed=1; }
printf '%s' "$out" | grep -q '"pong":true' || { echo "FAIL: no pong"; failed=1; }
printf '%s' "$out" | grep -q 'malformed eval request' || { echo "FAIL: an incomplete eval request was not refused"; failed=1; }
printf '%s' "$out" | grep -q 'not a JSON object' || { echo "FAIL: garbage was not refused"; failed=1; }
# Fields of the wrong type are one error answer each, never an uncaught exception: a type that is
# not a string, a seed that is a float too big for an integer, a malformed list of shipped files.
out=$({ frame '{"type":5}'; frame "{\"type\":\"eval\",\"task_dir\":\"$task\",\"options\":{},\"seed\":1e300}"
        frame '{"type":"ping","shipped":"x"}'; frame '{"type":"ping","shipped":["/nowhere"]}'; frame '{"type":"ping"}'; } |
      "$kforge" worker)
code=$?
[ $code -eq 0 ] || { echo "FAIL: exit $code after malformed fields"; failed=1; }
for want in 'malformed request: .*type must be string' 'malformed eval request: .*expected an integer, not number' \
            "malformed shipped files: 'shipped' is not a list" "shipped '/nowhere' is not a file of the request" '"pong":true'; do
  printf '%s' "$out" | grep -q "$want" || { echo "FAIL: no answer '$want' in: $out"; failed=1; }
done
# A file after the request that is not the one its hash names: an error answer, then the worker
# ends (the frames after it may be out of step).
out=$({ frame '{"type":"ping","blobs":["00000000000000000000000000000000"]}'; frame 'bytes'; frame '{"type":"ping"}'; } |
      KFORGE_CACHE_DIR=$scratch "$kforge" worker)
code=$?
[ $code -eq 3 ] && printf '%s' "$out" | grep -q "file 1 of 1 is not the one named" && ! printf '%s' "$out" | grep -q pong ||
  { echo "FAIL: a corrupt file gave exit $code and '$out'"; failed=1; }
err=$(printf 'xyz\n{}' | "$kforge" worker 2>&1 >/dev/null)
code=$?
[ $code -eq 2 ] && printf '%s' "$err" | grep -q 'malformed frame header' ||
  { echo "FAIL: a bad frame header gave exit $code and '$err'"; failed=1; }
exit $failed
