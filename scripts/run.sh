#!/usr/bin/env bash
# The main job on the embedded defaults: build, then evaluate every CPU seed kernel of the
# default suite (llm) and store the results in ./kforge.db (or $KFORGE_DB).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/kforge eval --suite llm
build/kforge db list
