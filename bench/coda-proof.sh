#!/usr/bin/env bash
# The CoDA proof runs of docs/coda.md: for each model and method, train (1 epoch), export (CoDA:
# the sparse form, verified against the hard top-k form), evaluate the export; then one summary
# line per run in OUT/summary.tsv (tuned accuracy from metrics.jsonl, export accuracy from eval).
#
#   bash bench/coda-proof.sh spam|sentiment [MODEL...]       MODEL: minilm bge (default: both)
#
# spam: the SpamAssassin sample of bench/jsonl_sample.py in runs/spam (600 train / 300 test,
#       stratified, seed 42); sentiment: the embedded UCI sentences, stratified 20% test, seed 42.
# Environment: METHODS (head parallel-adapter coda-n2 coda-n3 coda-n4), MAXLEN (spam 128,
# sentiment 64), BATCH (16), EPOCHS (1), LR (2e-3; the head alone 1e-2), THREADS (2),
# OUT (runs/coda-proof), JAVA (java -Xmx3g), GRAFT (the command; default $JAVA -jar tools/target/graft.jar).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:?spam or sentiment}; shift
MODELS_=("$@"); [ ${#MODELS_[@]} -eq 0 ] && MODELS_=(minilm bge)
METHODS=${METHODS:-head parallel-adapter coda-n2 coda-n3 coda-n4}
BATCH=${BATCH:-16}; EPOCHS=${EPOCHS:-1}; LR=${LR:-2e-3}; THREADS=${THREADS:-2}
OUT=${OUT:-$ROOT/runs/coda-proof}; JAVA=${JAVA:-java -Xmx3g}
CACHE=${GRAFT_CACHE:-$HOME/.cache/graft}/models
graft() { ${GRAFT:-$JAVA -jar $ROOT/tools/target/graft.jar} "$@"; }
case $DATA in
  spam) MAXLEN=${MAXLEN:-128}
        [ -f "$ROOT/runs/spam/train.jsonl" ] || { echo "run bench/jsonl_sample.py first (docs/coda.md)" >&2; exit 1; }
        DATAARGS=(--train "$ROOT/runs/spam/train.jsonl" --test "$ROOT/runs/spam/test.jsonl"); TEST=$ROOT/runs/spam/test.jsonl ;;
  sentiment) MAXLEN=${MAXLEN:-64}; DATAARGS=(--train sentiment --test-fraction 0.2); TEST="" ;;
  *) echo "unknown data $DATA (spam or sentiment)" >&2; exit 1 ;;
esac
mkdir -p "$OUT"
for m in "${MODELS_[@]}"; do
  case $m in
    minilm) MODEL=$CACHE/all-minilm-l6-v2.onnx; TOK=$CACHE/all-minilm-l6-v2-tokenizer.json ;;
    bge) MODEL=$CACHE/bge-small-en-v1.5.onnx; TOK=$CACHE/bge-small-en-v1.5-tokenizer.json ;;
    *) echo "unknown model $m (minilm or bge)" >&2; exit 1 ;;
  esac
  for r in $METHODS; do
    run=$OUT/$DATA-$m-$r
    lr=$LR; [ "$r" = head ] && lr=1e-2
    [ -f "$run/export-eval.json" ] && continue
    start=$(date +%s)
    graft train "$MODEL" --tokenizer "$TOK" --recipe "$ROOT/bench/coda/$r.yaml" "${DATAARGS[@]}" \
      --seed 42 --epochs "$EPOCHS" --batch-size "$BATCH" --max-length "$MAXLEN" --threads "$THREADS" \
      --lr "$lr" --out "$run" > "$run.log" 2>&1
    trained=$(date +%s)
    graft export "$run/tuned.onnx" "$run/export.onnx" >> "$run.log" 2>&1
    test=${TEST:-$run/test-split.jsonl}
    graft eval "$run/export.onnx" --data "$test" --max-length "$MAXLEN" --json > "$run/export-eval.json.tmp" 2>> "$run.log"
    mv "$run/export-eval.json.tmp" "$run/export-eval.json"
    tuned=$(grep '"test_accuracy"' "$run/metrics.jsonl" | tail -1 | grep -o '"test_accuracy":[0-9.]*' | cut -d: -f2 || true)
    exp=$(grep -o '"accuracy":[0-9.]*' "$run/export-eval.json" | head -1 | cut -d: -f2)
    printf '%s\t%s\t%s\ttuned %s\texport %s\ttrain %ss\t%s\n' "$DATA" "$m" "$r" "$tuned" "$exp" \
      $((trained - start)) "$(date +%H:%M)" | tee -a "$OUT/summary.tsv"
  done
done
