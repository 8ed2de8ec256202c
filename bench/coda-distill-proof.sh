#!/usr/bin/env bash
# What CoDA's light distillation phase buys (docs/coda.md): CoDA k = n/3 on the SpamAssassin sample
# (runs/spam, bench/jsonl_sample.py), distilled on the 600 unlabelled texts, then the same task run
# as bench/coda-proof.sh's task-only coda-n3 row (same split, steps, batch, learning rate).
#
#   bash bench/coda-distill-proof.sh [MODEL]          MODEL: minilm (default) or bge
# Environment: MAXLEN (128), DLR (distillation lr, 1e-2), DBATCH (8), LR (2e-3), BATCH (16),
# THREADS (2), OUT (runs/coda-proof), GRAFT (java -Xmx3g -jar tools/target/graft.jar).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
m=${1:-minilm}
MAXLEN=${MAXLEN:-128}; DLR=${DLR:-1e-2}; DBATCH=${DBATCH:-8}; LR=${LR:-2e-3}; BATCH=${BATCH:-16}; THREADS=${THREADS:-2}
OUT=${OUT:-$ROOT/runs/coda-proof}; GRAFT=${GRAFT:-java -Xmx3g -jar $ROOT/tools/target/graft.jar}
CACHE=${GRAFT_CACHE:-$HOME/.cache/graft}/models
case $m in
  minilm) MODEL=$CACHE/all-minilm-l6-v2.onnx; TOK=$CACHE/all-minilm-l6-v2-tokenizer.json ;;
  bge) MODEL=$CACHE/bge-small-en-v1.5.onnx; TOK=$CACHE/bge-small-en-v1.5-tokenizer.json ;;
  *) echo "unknown model $m (minilm or bge)" >&2; exit 1 ;;
esac
mkdir -p "$OUT"
d=$OUT/spam-$m-distill
[ -f "$d/tuned.onnx" ] || $GRAFT train "$MODEL" --tokenizer "$TOK" --task coda-distill --recipe "$ROOT/bench/coda/coda-n3-distill.yaml" \
  --train "$ROOT/runs/spam/unlabelled.jsonl" --test-fraction 0.1 --seed 42 --epochs 1 --batch-size "$DBATCH" \
  --max-length "$MAXLEN" --threads "$THREADS" --lr "$DLR" --out "$d" > "$d.log" 2>&1
t=$OUT/spam-$m-distill-task
$GRAFT train "$d/tuned.onnx" --tokenizer "$TOK" --recipe "$ROOT/bench/coda/head.yaml" \
  --train "$ROOT/runs/spam/train.jsonl" --test "$ROOT/runs/spam/test.jsonl" --seed 42 --epochs 1 \
  --batch-size "$BATCH" --max-length "$MAXLEN" --threads "$THREADS" --lr "$LR" --out "$t" > "$t.log" 2>&1
$GRAFT export "$t/tuned.onnx" "$t/export.onnx" >> "$t.log" 2>&1
$GRAFT eval "$t/export.onnx" --data "$ROOT/runs/spam/test.jsonl" --max-length "$MAXLEN" --json > "$t/export-eval.json"
first=$(grep -o '"step":1,"epoch":1,"loss":[0-9.]*' "$d/metrics.jsonl" | cut -d: -f4)
mse=$(grep -o '"test_distill_mse":[0-9.e-]*' "$d/metrics.jsonl" | tail -1 | cut -d: -f2)
tuned=$(grep -o '"test_accuracy":[0-9.]*' "$t/metrics.jsonl" | tail -1 | cut -d: -f2)
exp=$(grep -o '"accuracy":[0-9.]*' "$t/export-eval.json" | head -1 | cut -d: -f2)
printf 'spam\t%s\tdistill+coda-n3\tdistill first-step %s held-out %s\ttuned %s\texport %s\t%s\n' "$m" "$first" "$mse" "$tuned" "$exp" "$(date +%H:%M)" \
  | tee -a "$OUT/summary.tsv"
