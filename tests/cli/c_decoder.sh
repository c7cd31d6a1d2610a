#!/usr/bin/env bash
# bench/c_decoder (the hand-written C decoder bench_infer measures kforge against) on small synthetic
# checkpoints: its greedy tokens equal `kforge infer`'s for the same model and steps (grouped-query
# and multi-head attention), and bad input is one error line.
set -eu
kforge=$1 c_decoder=$2 dir=$3
rm -rf "$dir"; mkdir -p "$dir"

# Same model, <s> then 24 steps: the C decoder prints the 25 greedy tokens, infer --steps 25 the same.
same_tokens() {
  local name=$1; shift
  "$kforge" infer make-model "$@" --seq-len 64 --out "$dir/$name.bin" >/dev/null
  want=$("$kforge" infer --model "$dir/$name.bin" --db "$dir/none.db" --steps 25 2>/dev/null | sed -n 2p | xargs)
  got=$("$c_decoder" "$dir/$name.bin" 24 | sed -n 's/^tokens: //p')
  [ "$(echo "$got" | wc -w)" -eq 25 ] || { echo "$name: c_decoder printed '$got'"; exit 1; }
  # Synthetic weights settle on a token: these seeds move through several first, so position,
  # rope and the cache are exercised.
  [ "$(echo "$got" | tr ' ' '\n' | sort -u | wc -l)" -ge 4 ] || { echo "$name: too few distinct tokens: $got"; exit 1; }
  [ "$got" = "$want" ] || { printf '%s: tokens differ\n  c_decoder: %s\n  kforge:    %s\n' "$name" "$got" "$want"; exit 1; }
  "$c_decoder" "$dir/$name.bin" 24 | grep -Eq "^decode: 24 steps in [0-9.]+ s, [0-9.]+ tokens/s$"
}
same_tokens gqa --dim 64 --layers 2 --heads 4 --kv-heads 2 --vocab 256 --seed 5
same_tokens mha --dim 128 --layers 4 --heads 4 --hidden 224 --vocab 256 --seed 2

# Bad input: usage (exit 2), a truncated checkpoint, a context too short (exit 1), one line each.
expect() {
  local code=$1 regex=$2; shift 2
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [ "$rc" -eq "$code" ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && printf '%s\n' "$out" | grep -Eq "$regex" ||
    { echo "expected exit $code and one line matching '$regex' from: $*"; printf 'got %s: %s\n' "$rc" "$out"; exit 1; }
}
expect 2 "^usage: c_decoder \[--int8\] CHECKPOINT STEPS" "$c_decoder" "$dir/gqa.bin"
expect 2 "^usage: c_decoder \[--int8\] CHECKPOINT STEPS" "$c_decoder" "$dir/gqa.bin" 3x
expect 2 "^usage: c_decoder \[--int8\] CHECKPOINT STEPS" "$c_decoder" --int8 "$dir/gqa.bin"
head -c 1000 "$dir/gqa.bin" > "$dir/cut.bin"
expect 1 "cut.bin: its size does not match its header" "$c_decoder" "$dir/cut.bin" 4
expect 1 "STEPS \+ 1 tokens do not fit" "$c_decoder" "$dir/gqa.bin" 64
expect 1 "none.bin: No such file" "$c_decoder" "$dir/none.bin" 4
echo "c_decoder.sh: ok"
