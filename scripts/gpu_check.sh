#!/usr/bin/env bash
# The GPU check: kforge's device code on a real NVIDIA GPU, on a machine that has only the CUDA
# toolkit, CMake and Python (no package manager, no network, no -dev packages).
#
#   scripts/gpu_check.sh --bundle   here, after scripts/build.sh: collects build/gpu-bundle/ (the
#                                   kforge and test_gpu programs, stripped, and the non-system
#                                   shared libraries they need, per ldd). Copy it beside the repo.
#   scripts/gpu_check.sh [--log F]  there, from the repo root: runs test_gpu, `kforge eval
#                                   --backend cuda` of every tasks/llm/*/seeds/cuda_*.cu, the basic
#                                   suite's CUDA seeds, the CUDA cheats, a short CUDA search and
#                                   `kforge infer --backend cuda --compare`; prints a summary
#                                   table, exits non-zero on any failure or skip.
# Everything is found relative to the repo root, since the bundle lands under another path there.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=build/gpu-bundle

# ---- here: collect the bundle -------------------------------------------------------------------
if [ "${1:-}" = "--bundle" ]; then
  for program in build/kforge build/tests/test_gpu; do
    [ -x "$program" ] || { echo "gpu_check: $program missing: run scripts/build.sh first" >&2; exit 2; }
  done
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/lib-fallback"
  for program in build/kforge build/tests/test_gpu; do
    # Debug info is most of the size, and the device tool carries 64 MiB at most.
    strip --strip-debug -o "$bundle/bin/$(basename "$program")" "$program" || exit 1
    while read -r name _ path _; do
      case "$name" in
        # glibc is the one thing that cannot travel: the GPU machine's own must be >= ours.
        linux-vdso.so.*|ld-linux*|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*) continue ;;
        # Used only where the GPU machine's own copies are too old (see below).
        libstdc++.so.*|libgcc_s.so.*) cp -L "$path" "$bundle/lib-fallback/" ;;
        *)
          [ -f "$path" ] || { echo "gpu_check: $program needs $name, which ldd cannot find" >&2; exit 1; }
          cp -L "$path" "$bundle/lib/" ;;
      esac
    done < <(ldd "$program" | grep '=>')
  done
  glibc=$(objdump -T "$bundle"/bin/* | grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -1)
  echo "$glibc" > "$bundle/needs-glibc"
  bytes=$(du -sb "$bundle" | cut -f1)
  ls -l "$bundle"/bin "$bundle"/lib "$bundle"/lib-fallback | grep -v '^total'
  echo "gpu_check: bundle $bundle: $((bytes / 1024 / 1024)) MiB; needs $glibc or newer on the GPU machine"
  if [ "$bytes" -gt $((48 * 1024 * 1024)) ]; then
    echo "gpu_check: the bundle is over 48 MiB: too close to the 64 MiB the device tool carries" >&2
    exit 1
  fi
  exit 0
fi

# ---- there: run the check -----------------------------------------------------------------------
log=""
if [ "${1:-}" = "--log" ] && [ -n "${2:-}" ]; then log=$2; fi
if [ -n "$log" ]; then exec > >(tee "$log") 2>&1; fi
if [ ! -x "$bundle/bin/kforge" ]; then
  echo "gpu_check: no $bundle here: run 'scripts/gpu_check.sh --bundle' on the build machine and copy" \
    "build/gpu-bundle to this repo's build/" >&2
  exit 2
fi

start_all=$(date +%s.%N)
deadline=$(( $(date +%s) + 510 ))  # the whole check stays under 8.5 minutes; the least telling row runs last
export LD_LIBRARY_PATH="$PWD/$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The machine's libstdc++ wins unless it is older than the build's.
if ! probe=$("$bundle/bin/kforge" --version 2>&1); then
  if grep -q 'GLIBCXX\|CXXABI' <<<"$probe"; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$PWD/$bundle/lib-fallback"
    echo "gpu_check: this machine's libstdc++ is older than the build's; using the bundled one"
    probe=$("$bundle/bin/kforge" --version 2>&1)
  fi
  if grep -q 'GLIBC_' <<<"$probe"; then
    echo "gpu_check: this machine's glibc is older than the build's ($(cat "$bundle/needs-glibc")): $probe" >&2
    exit 2
  fi
fi
export KFORGE_SOURCE_DIR=$PWD KFORGE_TASKS_DIR=$PWD/tasks
# The cuBLAS baselines (gemv, gemm) try $KFORGE_CUBLAS, libcublas.so.13 on the loader path, then
# $CUDA_HOME, $CUDA_PATH and /usr/local/cuda (lib64); a pip wheel's copy is found here.
if [ -z "${KFORGE_CUBLAS:-}" ]; then
  KFORGE_CUBLAS=$(ls "${CUDA_HOME:-/usr/local/cuda}"/lib64/libcublas.so.13 /usr/local/cuda/lib64/libcublas.so.13 \
    $(python3 -c 'import site; print(" ".join(p + "/nvidia/*/lib/libcublas.so.13" for p in site.getsitepackages()))' \
      2>/dev/null) 2>/dev/null | head -1)
  export KFORGE_CUBLAS
fi
KFORGE_CACHE_DIR=$(mktemp -d /tmp/kforge-gpu-check.XXXXXX)
export KFORGE_CACHE_DIR
work=$KFORGE_CACHE_DIR

rows=()
failed=0
add_row() {  # NAME RESULT SECONDS
  rows+=("$(printf '%-70s %-6s %8.2f s' "$1" "$2" "$3")")
  [ "$2" = "PASS" ] || failed=$((failed + 1))
}
seconds_since() { awk -v now="$(date +%s.%N)" -v then="$1" 'BEGIN { printf "%.2f", now - then }'; }
time_left() { local left=$((deadline - $(date +%s))); [ "$left" -gt "$1" ] && echo "$1" || echo "$((left > 5 ? left : 5))"; }

echo "== machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "$probe"
"$bundle/bin/kforge" devices
echo "cuBLAS for the baselines: ${KFORGE_CUBLAS:-none found here: libcublas.so.13 from the loader path, else naive}"

echo "== test_gpu"
t=$(date +%s.%N)
timeout "$(time_left 240)" "$bundle/bin/test_gpu" > "$work/test_gpu.out" 2>&1
rc=$?
cat "$work/test_gpu.out"
while read -r mark name ms; do
  case "$mark" in
    OK) result=PASS ;; FAILED) result=FAIL ;; SKIPPED) result=SKIP ;; *) continue ;;
  esac
  add_row "test_gpu $name" "$result" "$(echo "${ms#(}" | awk '{print $1 / 1000}')"
done < <(sed -n 's/^\[ *\(OK\|FAILED\|SKIPPED\) *\] \(GpuTest\.[A-Za-z]*\) \(([0-9]* ms)\)$/\1 \2 \3/p' "$work/test_gpu.out")
if [ "$rc" -ne 0 ] || ! grep -q '^\[  PASSED  \]' "$work/test_gpu.out"; then
  add_row "test_gpu (the program, exit $rc)" FAIL "$(seconds_since "$t")"
fi

echo "== kforge eval --backend cuda, every CUDA seed of the llm suite"
for seed in tasks/llm/*/seeds/cuda_*.cu; do
  [ -e "$seed" ] || continue
  task=$(echo "$seed" | sed 's|^tasks/||; s|/seeds/.*||')
  echo "-- $task $seed"
  t=$(date +%s.%N)
  timeout "$(time_left 100)" "$bundle/bin/kforge" eval --backend cuda --task "$task" --kernel "$seed" \
    --db "$work/gpu_check.db" | tee "$work/eval.out"
  rc=${PIPESTATUS[0]}
  baseline=$(grep -o ' vs [^ ]*' "$work/eval.out" | head -1)  # the baseline it was timed against
  add_row "eval $seed$baseline" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "$(seconds_since "$t")"
done

echo "== CUDA cheats: each must end in the status its // expect line names"
t=$(date +%s.%N)
timeout "$(time_left 120)" tests/cli/cuda_cheats.sh eval "$bundle/bin/kforge" tests/cheats_cuda "$work/cheats.db"
rc=$?
add_row "tests/cheats_cuda (every cheat refused)" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "$(seconds_since "$t")"

echo "== kforge search --backend cuda: a short offline search, then what the library would serve"
t=$(date +%s.%N)
timeout "$(time_left 100)" "$bundle/bin/kforge" search --backend cuda --tasks llm/rmsnorm,llm/gemv --evals 6 \
  --islands 2 --time 35s --db "$work/search.db" &&
  "$bundle/bin/kforge" db best --db "$work/search.db" --device cuda
rc=$?
add_row "search --backend cuda (rmsnorm, gemv; 6 evaluations or 35 s)" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" \
  "$(seconds_since "$t")"

echo "== kforge infer --backend cuda --compare: a small synthetic Llama on the GPU, baseline kernels against a library"
# The library: llm/gemv's cuda_warp_rows.cu evaluated at the model's own shapes (--emit-tasks
# --tasks-out), so the tuned run uses it for the decode projections and the classifier. PASS: the
# logits of the two runs agree at every step (exit 0).
t=$(date +%s.%N)
"$bundle/bin/kforge" infer make-model --dim 256 --layers 4 --heads 8 --kv-heads 4 --vocab 4096 --seq-len 128 \
  --out "$work/m.bin" &&
  "$bundle/bin/kforge" infer --model "$work/m.bin" --emit-tasks --tasks-out "$work/m-tasks" >/dev/null &&
  timeout "$(time_left 25)" "$bundle/bin/kforge" --tasks-dir "$work/m-tasks" eval --backend cuda --task llm/gemv \
    --kernel tasks/llm/gemv/seeds/cuda_warp_rows.cu --db "$work/infer.db" &&
  timeout "$(time_left 30)" "$bundle/bin/kforge" infer --model "$work/m.bin" --backend cuda --compare --steps 16 \
    --prompt "1 2 3 4 5 6 7 8" --db "$work/infer.db" --kernels
rc=$?
add_row "infer --backend cuda --compare (dim 256, 4 layers, vocab 4096; 16 steps)" \
  "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "$(seconds_since "$t")"

echo "== kforge tasks check --suite basic --backend cuda --check-only: every CUDA seed of the basic suite, correctness only"
t=$(date +%s.%N)
timeout "$(time_left 120)" "$bundle/bin/kforge" tasks check --suite basic --backend cuda --check-only
rc=$?
add_row "tasks check --suite basic --backend cuda --check-only" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" \
  "$(seconds_since "$t")"

echo
echo "== summary"
printf '%-70s %-6s %10s\n' "test / seed" "result" "time"
printf '%s\n' "${rows[@]}"
printf '%-70s %-6s %8.2f s\n' "total" "$([ "$failed" -eq 0 ] && echo PASS || echo FAIL)" "$(seconds_since "$start_all")"
rm -rf "$work"
[ "$failed" -eq 0 ]
