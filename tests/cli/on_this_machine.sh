#!/usr/bin/env bash
# on_this_machine.sh CASE KFORGE ARGS...: runs KFORGE ARGS and checks the answer that is right on
# this machine, found without asking kforge:
#   cuda     a machine with an NVIDIA GPU (nvidia-smi lists one, or the driver's /proc entry does)
#            must not answer "no device" (and an eval must end ok); one without must exit 2 with
#            "cuda: no device to run on" and say where to go instead.
#   gfx942   hiprtc either compiles for gfx942 (exit 0, "ok: hip gfx942") or crashes on it (Debian's
#            ROCm 5.2), which kforge must turn into exit 1, "hiprtc crashed ... compiling for gfx942".
set -u
case_=$1
shift
expect=$(dirname "$0")/expect.sh
case $case_ in
  cuda)
    if { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; } ||
       [ -n "$(ls /proc/driver/nvidia/gpus 2>/dev/null)" ]; then
      echo "on_this_machine.sh: an NVIDIA GPU is present"
      output=$("$@" 2>&1)
      code=$?
      printf '%s\n' "$output"
      if printf '%s' "$output" | grep -q "no device to run on"; then echo "says no device, but there is one" >&2; exit 1; fi
      if [ "$2" = eval ] || [ "$1" = eval ]; then [ "$code" -eq 0 ] || { echo "exit code $code, wanted 0" >&2; exit 1; }; fi
      [ "$code" -ne 2 ] || { echo "exit code 2 (a usage error)" >&2; exit 1; }
    else
      echo "on_this_machine.sh: no NVIDIA GPU"
      if [ "$2" = eval ] || [ "$1" = eval ]; then
        exec "$expect" 2 "cuda: no device to run on .*kforge compile --backend cuda" "$@"
      fi
      exec "$expect" 2 "cuda: no device to run on" "$@"
    fi
    ;;
  gfx942)
    output=$("$@" 2>&1)
    code=$?
    printf '%s\n' "$output"
    if [ "$code" -eq 0 ] && printf '%s' "$output" | grep -q "ok: hip gfx942"; then exit 0; fi
    if [ "$code" -eq 1 ] && printf '%s\n' "$output" | grep -Eq "hiprtc crashed .*compiling for gfx942"; then exit 0; fi
    echo "exit code $code: neither compiled for gfx942 nor reported hiprtc's crash" >&2
    exit 1
    ;;
  *) echo "on_this_machine.sh: unknown case '$case_'" >&2; exit 2 ;;
esac
