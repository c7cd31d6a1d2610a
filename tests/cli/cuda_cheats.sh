#!/usr/bin/env bash
# tests/cheats_cuda/: `compile` mode (CI) compiles each for sm_90; `eval` mode (the GPU check)
# evaluates each on the GPU and wants the status and message its `// expect` lines name.
set -u
mode=$1 kforge=$2 cheats=$3 db=${4:-/tmp/kforge-cuda-cheats.db}
failed=0
for kernel in "$cheats"/*.cu; do
  name=$(basename "$kernel")
  if [ "$mode" = compile ]; then
    if out=$("$kforge" compile --backend cuda --arch sm_90 --task llm/rmsnorm "$kernel" 2>&1); then
      echo "ok   $name compiles"
    else
      echo "FAIL $name: $out"; failed=1
    fi
    continue
  fi
  want=$(sed -n 's|^// expect: *||p' "$kernel")
  want_message=$(sed -n 's|^// expect-message: *||p' "$kernel")
  json=$("$kforge" eval --backend cuda --task llm/rmsnorm --kernel "$kernel" --db "$db" --json 2>/dev/null)
  got=$(printf '%s\n' "$json" | sed -n 's|^  "status": "\(.*\)",|\1|p')
  message=$(printf '%s\n' "$json" | sed -n 's|^  "message": "\(.*\)",|\1|p')
  if [ "$got" = "$want" ] && printf '%s' "$message" | grep -qF -- "$want_message"; then
    echo "ok   $name: $got: $message"
  else
    echo "FAIL $name: status '$got' ('$message'), wanted '$want' ('$want_message')"; failed=1
  fi
done
exit $failed
