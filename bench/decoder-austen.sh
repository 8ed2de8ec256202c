#!/usr/bin/env bash
# Issue 12's perplexity table: the decoder pretrained here on State of the Union speeches
# 1790-1860 (~/.cache/graft/models/decoder-sotu-1790-1860.onnx, 2 layers, hidden 64, 111,031
# parameters) adapted to another corpus, Jane Austen (Debian's r-cran-janeaustenr): trained on
# Pride and Prejudice, scored on a novel it never sees, Persuasion (held out whole).
#   bash bench/decoder-austen.sh [OUT_DIR]        (needs tools/target/graft.jar, or GRAFT_CP)
# Env: EPOCHS (3), LORA_LR (5e-3), FULL_LRS ("3e-4 1e-3"), THREADS (2), BATCH (16).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
out="${1:-runs/decoder-austen}"
epochs="${EPOCHS:-3}"; lora_lr="${LORA_LR:-5e-3}"; full_lrs="${FULL_LRS:-3e-4 1e-3}"
threads="${THREADS:-2}"; batch="${BATCH:-16}"
base="${GRAFT_DECODER:-$HOME/.cache/graft/models/decoder-sotu-1790-1860.onnx}"
[[ -f "$base" ]] || { echo "no pretrained decoder at $base (set GRAFT_DECODER)" >&2; exit 1; }
cp="${GRAFT_CP:-tools/target/graft.jar}"   # a copy, so that a rebuild does not pull the jar from under a run
graft() { java -cp "$cp" dev.graft.tools.cli.Graft "$@"; }
train="$(java -cp "$cp" dev.graft.fixtures.JaneAusten prideprejudice)"
test="$(java -cp "$cp" dev.graft.fixtures.JaneAusten persuasion)"
mkdir -p "$out"
common=(--task causal-lm --train "$train" --test "$test" --max-length 64 --batch-size "$batch"
        --epochs "$epochs" --threads "$threads" --seed 42)
pre="$(graft eval "$base" --task causal-lm --data "$test" --max-length 64 --threads "$threads" | awk '/^perplexity/ {print $2}')"
rows=("| pretrained (SOTU 1790-1860) | 0 | - | $pre |")
run() { # name recipe lr
  graft train "$base" --recipe "$2" "${common[@]}" --lr "$3" --out "$out/$1" > "$out/$1.log" 2>&1
  local p n
  p="$(grep -o '"test_perplexity":[0-9.]*' "$out/$1/metrics.jsonl" | tail -1 | cut -d: -f2)"
  n="$(grep -o 'after [0-9]* epochs ([0-9,]* trainable' "$out/$1.log" | grep -o '([0-9,]*' | tr -d '(')"
  rows+=("| $1 | $n | $3 | $(printf '%.4f' "$p") |")
  echo "$1 lr $3: perplexity $p ($n trainable)"
}
run lora-qv-r8 bench/decoders/lora-qv-r8.yaml "$lora_lr"
run lora-qv-r16 bench/decoders/lora-qv-r16.yaml "$lora_lr"
run lora-all-r8 bench/decoders/lora-all-r8.yaml "$lora_lr"
run lora-all-r16 bench/decoders/lora-all-r16.yaml "$lora_lr"
for lr in $full_lrs; do run "full-lr$lr" examples/recipes/full.yaml "$lr"; done
echo
echo "Persuasion (held out), perplexity per byte; trained on Pride and Prejudice, $epochs epochs, batch $batch x 64 bytes"
echo "| model | trainable parameters | lr | perplexity |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
