#!/usr/bin/env bash
# Candidates evaluated per minute with 1 and 2 workers, local and through Slurm, in one run (as
# ratios to local:1): starts a single-node Slurm cluster under the build tree (as the tests do,
# tests/cli/services.sh; root needed), runs bench_workers on it, stops the cluster.
#
#   bench/bench_workers.sh [BUILD_DIR] [--task DIR|SUITE/NAME] [--evals N]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
. "$root/tests/cli/services.sh"
trap stop_services EXIT
start_slurm "$build/bench-slurm" >/dev/null
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--task "$root/tests/data/tasks/search/scale" --evals 1000)
"$build/bench/bench_workers" "${args[@]}" local:1 local:2 slurm:1 slurm:2
