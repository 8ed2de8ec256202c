#!/usr/bin/env bash
# docs/coda.md's latency tables: `graft bench` of the models of bench/coda-bench-models.sh, one
# process per model and shape, 2 threads: seq 128 batch 8 and seq 512 batch 2.
#   bash bench/coda-bench.sh [MODEL...]     MODEL: minilm bge (default: both); RUNS (10), WARMUP (2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GRAFT=${GRAFT:-java -Xmx3g -jar $ROOT/tools/target/graft.jar}
RUNS=${RUNS:-10}; WARMUP=${WARMUP:-2}
MS=("$@"); [ ${#MS[@]} -eq 0 ] && MS=(minilm bge)
for m in "${MS[@]}"; do
  d=$ROOT/runs/coda-bench/$m
  for shape in "128 8" "512 2"; do
    set -- $shape
    echo "== $m seq $1 batch $2 ($(date +%H:%M))"
    $GRAFT bench "$d/head.onnx" "$d/parallel-adapter.onnx" "$d/coda-n2.onnx" "$d/coda-n3.onnx" "$d/coda-n4.onnx" \
      "$d/coda-n3-lambda.onnx" --batch "$2" --seq "$1" --threads 2 --runs "$RUNS" --warmup "$WARMUP"
  done
done
