#!/usr/bin/env bash
# The parsers' libFuzzer targets (docs/fuzzing.md).
#   run.sh build DIR [-O0|-O1]       configures and builds them with clang into DIR: -O1 (the
#                                    default) for long runs, -O0 builds in half the time
#   run.sh run DIR TARGET [ARG...]   fuzzes TARGET (task_toml, kernel_header, llm_reply,
#                                    worker_frame) from its seeds, libFuzzer's ARGs added
#                                    (-max_total_time=10 for a short pass, -runs=120000 for a long one)
# A target's seeds: tests/fuzz/corpus/TARGET (kept inputs, crashes found included) and the
# repository's own files of its kind; what the fuzzer finds new goes to DIR/corpus/TARGET, a crash
# to DIR/artifacts/.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=$2
export PATH=/usr/lib/llvm-14/bin:$PATH  # llvm-symbolizer, for the stack of a sanitizer's report

if [ "$1" = build ]; then
  cxx=${KFORGE_FUZZ_CXX:-clang++-14}
  command -v "$cxx" >/dev/null || { echo "run.sh: no $cxx: scripts/install_deps.sh installs clang-14" >&2; exit 1; }
  cmake -S "$src" -B "$dir" -DKFORGE_FUZZ=ON -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Fuzz \
    -DCMAKE_CXX_FLAGS_FUZZ="${3:--O1}" \
    -DKFORGE_BUILD_TESTS=OFF -DKFORGE_BUILD_BENCH=OFF >/dev/null
  exec cmake --build "$dir" -j "$(nproc)" --target fuzzers
fi

target=$3
shift 3
seeds=$dir/seeds/$target
rm -rf "$seeds"
mkdir -p "$seeds" "$dir/corpus/$target" "$dir/artifacts"
copy() {  # the repository's files as seeds, each named by its path
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$seeds/$(echo "${f#"$src"/}" | tr / _)"; done
  return 0
}
case $target in
  task_toml) copy "$src"/tasks/*/*/task.toml "$src"/tests/data/tasks/*/*/task.toml ;;
  kernel_header) copy "$src"/tasks/*/*/seeds/* "$src"/tests/kernels/* "$src"/tests/cheats/* ;;
  llm_reply | worker_frame) ;;
  *) echo "run.sh: unknown target '$target'" >&2; exit 2 ;;
esac
exec "$dir/tests/fuzz/fuzz_$target" -dict="$src/tests/fuzz/$target.dict" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$dir/artifacts/$target-" "$@" "$dir/corpus/$target" "$seeds" "$src/tests/fuzz/corpus/$target"
