#!/usr/bin/env bash
# The models `graft bench` compares in docs/coda.md: each recipe of bench/coda rewritten onto the
# base and exported (CoDA: the sparse form). Speed does not depend on the trained values (TopK
# picks k tokens whatever the scores), so untrained rewrites serve; coda-n3-lambda differs from
# coda-n3 only in export-weights (lambda: the soft top-k's λ, its 20 iterations on all n scores
# in the export; coda-n3: 1, hard TopK only): the pair measures the iterations' cost.
#
#   bash bench/coda-bench-models.sh MODEL       MODEL: minilm or bge; writes runs/coda-bench/MODEL/*.onnx
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
m=${1:?minilm or bge}
GRAFT=${GRAFT:-java -Xmx3g -jar $ROOT/tools/target/graft.jar}
CACHE=${GRAFT_CACHE:-$HOME/.cache/graft}/models
case $m in
  minilm) MODEL=$CACHE/all-minilm-l6-v2.onnx ;;
  bge) MODEL=$CACHE/bge-small-en-v1.5.onnx ;;
  *) echo "unknown model $m (minilm or bge)" >&2; exit 1 ;;
esac
out=$ROOT/runs/coda-bench/$m
mkdir -p "$out"
for r in head parallel-adapter coda-n2 coda-n3 coda-n4 coda-n3-lambda; do
  [ -f "$out/$r.onnx" ] && continue
  $GRAFT rewrite "$MODEL" "$out/$r-rewritten.onnx" --recipe "$ROOT/bench/coda/$r.yaml" > "$out/$r.log" 2>&1
  $GRAFT export "$out/$r-rewritten.onnx" "$out/$r.onnx" >> "$out/$r.log" 2>&1
  rm -f "$out/$r-rewritten.onnx"*
done
ls "$out"
