#!/usr/bin/env bash
# expect.sh CODE REGEX CMD...: runs CMD, fails unless it exits with CODE and its output
# (stdout and stderr together) matches the extended regex REGEX.
set -u
code=$1 regex=$2
shift 2
output=$("$@" 2>&1)
actual=$?
printf '%s\n' "$output"
if [ "$actual" -ne "$code" ]; then
  echo "expect.sh: exit code $actual, wanted $code" >&2
  exit 1
fi
if ! printf '%s\n' "$output" | grep -Ezq -- "$regex"; then
  echo "expect.sh: output does not match /$regex/" >&2
  exit 1
fi
