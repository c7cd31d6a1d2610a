#!/usr/bin/env bash
# kforge infer end to end: make-model, generation on the baseline (no library), --emit-tasks,
# --compare against a library holding one kernel tuned at the model's rmsnorm shapes (on the tasks
# --emit-tasks --tasks-out wrote), and the bad inputs: a truncated
# checkpoint, a header that does not match the file, --compare with no library; --backend cuda
# (one line without a GPU).
set -eu
kforge=$1 dir=$2 tasks=$3
rm -rf "$dir"; mkdir -p "$dir"
run() { echo "+ kforge $*" >&2; "$kforge" "$@" 2>&1; }
fails() { if out=$(run "$@"); then echo "exited 0: $*"; exit 1; else printf '%s\n' "$out"; fi; }

# Vocab 256 is too small for a llama2.c tokenizer (3 specials, 256 byte pieces, " "): none is written.
run infer make-model --dim 64 --layers 2 --heads 4 --kv-heads 2 --vocab 256 --seq-len 64 --out "$dir/m.bin" \
  | grep -Eq "wrote .*m.bin: dim 64, hidden 192, 2 layers, 4 heads, 2 kv heads, vocab 256, seq_len 64; .* MB; no tokenizer: a llama2.c tokenizer needs --vocab >= 260 "
[ ! -e "$dir/m.tokenizer.bin" ]
cmp <(run infer make-model --dim 64 --layers 2 --heads 4 --kv-heads 2 --vocab 256 --seq-len 64 --out "$dir/m2.bin" >/dev/null; cat "$dir/m2.bin") "$dir/m.bin"

out=$(run infer --model "$dir/m.bin" --db "$dir/none.db" --prompt "1 5 9" --steps 8)
printf '%s\n' "$out" | grep -q "no kernel library at .*none.db: running the baseline kernels"
printf '%s\n' "$out" | grep -Eq "prefill 3 tokens in [0-9.]+ s, [0-9.]+ tokens/s; decode 7 tokens in [0-9.]+ s, [0-9.]+ tokens/s"
printf '%s\n' "$out" | grep -Eq "kernels: 0 tuned .*, [0-9]+ baseline"
fails infer --model "$dir/m.bin" --db "$dir/none.db" --prompt "hello" | grep -q "text needs a tokenizer"
# From vocab 260 make-model writes llama2.c's tokenizer beside the model: text prompts encode.
run infer make-model --dim 64 --layers 1 --heads 4 --vocab 512 --seq-len 64 --out "$dir/t.bin" \
  | grep -Eq "vocab 512, seq_len 64; .* MB; tokenizer .*t.tokenizer.bin$"
out=$(run infer --model "$dir/t.bin" --db "$dir/none.db" --prompt "$(printf 'Once upon a time, caf\xc3\xa9!')" --steps 4)
printf '%s\n' "$out" | grep -Eq "prefill [0-9]+ tokens in"
# Rewritten at a vocab too small for one, the model's stale tokenizer goes.
run infer make-model --dim 64 --layers 1 --heads 4 --vocab 200 --seq-len 64 --out "$dir/t.bin" | grep -q "removed the earlier"
[ ! -e "$dir/t.tokenizer.bin" ]

out=$(run infer --model "$dir/m.bin" --emit-tasks --batch 8)
printf '%s\n' "$out" | grep -q "^llm/gemv K=64,N=64  # decode wo"
printf '%s\n' "$out" | grep -q "^llm/gemv K=64,N=128  # decode wq/wk/wv stacked"
printf '%s\n' "$out" | grep -q "^llm/gemm_flat K=64,M=8,N=192 "
printf '%s\n' "$out" | grep -q "^llm/attn_decode D=16,H=4,KVH=2,L=64 "
printf '%s\n' "$out" | grep -q "^llm/lmhead_argmax K=64,V=256 "

# --tasks-out: the model's tasks, their bench shapes the model's; never into a folder in use.
run infer --model "$dir/m.bin" --emit-tasks --tasks-out "$dir/tasks" | grep -q "kforge --tasks-dir .*tasks search --suite llm"
grep -q "^bench = \[ { M = 1, N = 64 }, { M = 64, N = 64 } \]" "$dir/tasks/llm/rmsnorm/task.toml"
grep -q "^bench = \[ { D = 64, M = 1, V = 256 }, { D = 64, M = 64, V = 256 } \]" "$dir/tasks/llm/embedding/task.toml"
run --tasks-dir "$dir/tasks" tasks list --suite llm | grep -q "^llm/rmsnorm "
fails infer --model "$dir/m.bin" --emit-tasks --tasks-out "$dir/tasks" | grep -q "exists and is not empty"

# A library with llm/rmsnorm tuned at the model's shapes (M=1 and M=64, N=64), evaluated on those tasks.
run --tasks-dir "$dir/tasks" eval --task llm/rmsnorm --kernel "$tasks/llm/rmsnorm/seeds/cpu_omp_simd.cpp" \
  --db "$dir/k.db" >/dev/null
out=$(run --tasks-dir "$dir/tasks" infer --model "$dir/m.bin" --db "$dir/k.db" --prompt "1 2 3 4" --steps 6 --compare --kernels)
printf '%s\n' "$out" | grep -Eq "kernels: 2 tuned \(exact 1, nearest_dyn 1, nearest_device 0\)"
printf '%s\n' "$out" | grep -Eq "llm/rmsnorm M=1,N=64: exact: kernel [0-9a-f]+ \(cpu_omp_simd.cpp\)"
printf '%s\n' "$out" | grep -Eq "llm/rmsnorm M=4,N=64: nearest dynamic dim M=1 for M=4: kernel [0-9a-f]+ \(cpu_omp_simd.cpp\)"
printf '%s\n' "$out" | grep -Eq "^baseline: prefill 4 tokens .* tokens/s$"
printf '%s\n' "$out" | grep -Eq "^tuned: +prefill 4 tokens .* tokens/s$"
printf '%s\n' "$out" | grep -Eq "^llm/rmsnorm +6 "
printf '%s\n' "$out" | grep -Eq "^logits agree at all 6 steps: .*tolerance 0.001"

# Q8_0 projections: llm/gemv_q8_0 in the problems and the run; dim 64, hidden 192 are whole blocks.
run infer --model "$dir/m.bin" --emit-tasks --weights q8_0 | grep -q "^llm/gemv_q8_0 K=192,N=64  # decode w2"
run infer --model "$dir/m.bin" --db "$dir/none.db" --weights q8_0 --prompt "1 2" --steps 3 | grep -q "q8_0 weights"

size=$(stat -c %s "$dir/m.bin")
head -c $((size - 100)) "$dir/m.bin" > "$dir/cut.bin"
fails infer --model "$dir/cut.bin" | grep -Eq "^kforge: .*cut.bin: $((size - 100)) bytes, but its header \(dim 64.*\) needs $size: truncated$"
cat "$dir/m.bin" "$dir/m.bin" > "$dir/double.bin"
fails infer --model "$dir/double.bin" | grep -q "the header does not match the file"
# --backend cuda: with no NVIDIA GPU here, one line saying why and exit 2; with one, a run.
if out=$(run infer --model "$dir/m.bin" --backend cuda --db "$dir/none.db" --prompt "1 2" --steps 3); then
  printf '%s\n' "$out" | grep -Eq "kernels on nvidia:sm_[0-9]+:[0-9]+$"
  printf '%s\n' "$out" | grep -Eq "decode 2 tokens in [0-9.]+ s"
else
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || { printf '%s\n' "$out"; echo "--backend cuda: expected one line"; exit 1; }
  printf '%s\n' "$out" | grep -Eq "^kforge: cuda: .*(not found|no NVIDIA GPU|built without)"
fi
fails infer --model "$dir/m.bin" --compare --db "$dir/none.db" | grep -q "^kforge: --compare: no kernel library at"
fails infer --model "$dir/m.bin" --prompt "1 999" | grep -q "token 999 is outside the vocabulary"
echo "infer.sh: ok"
