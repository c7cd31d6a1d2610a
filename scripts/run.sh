#!/usr/bin/env bash
# The main job on the embedded defaults: build, then an offline search over the default suite
# (llm) on the CPU, every evaluation stored in ./kforge.db (or $KFORGE_DB), then the published
# winners. Exits 1 if a task ends without a correct kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/kforge search --suite llm --evals 6
build/kforge db best
