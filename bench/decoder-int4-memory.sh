#!/usr/bin/env bash
# Issue 12's 4-bit vs fp32 comparison: LoRA (r 8, every block linear) trained by graft train on
# the same LLaMA-style decoder in ONNX Runtime GenAI's form, once with fp32 weights and once with
# 4-bit MatMulNBits weights (TinyDecoders draws both from one seed; the int4 one is its block-32
# quantisation), each in its own JVM. Reports the frozen weights of the train-step graph, the
# process's peak RSS (VmHWM) and peak RssAnon (sampled every 0.1 s from /proc/PID/status), and
# the held-out perplexity after one epoch.
#   bash bench/decoder-int4-memory.sh [OUT_DIR]
# Env: LAYERS HIDDEN HEADS KV_HEADS FFN (4 1024 16 4 2816), BYTES (16000 bytes of Emma),
#      THREADS (2), BATCH (8), XMX (2g), GRAFT_CP (default tools/target/graft.jar).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
out="$(readlink -f "${1:-runs/decoder-int4-memory}")"
mkdir -p "$out"
cp="${GRAFT_CP:-tools/target/graft.jar}"
sizes=("${LAYERS:-4}" "${HIDDEN:-1024}" "${HEADS:-16}" "${KV_HEADS:-4}" "${FFN:-2816}" 128)
threads="${THREADS:-2}"; batch="${BATCH:-8}"; xmx="${XMX:-2g}"
recipe=bench/decoders/lora-all-r8.yaml
head -c "${BYTES:-16000}" "$(java -cp "$cp" dev.graft.fixtures.JaneAusten emma)" > "$out/emma.txt"
rows=()
for form in genai genai-int4; do
  model="$out/$form.onnx"
  [[ -f "$model" ]] || java -Xmx4g -cp "$cp" dev.graft.fixtures.TinyDecoders "$model" "$form" "${sizes[@]}" > /dev/null
  weights="$(java -Xmx4g -cp "$cp" dev.graft.trainer.bench.TrainGraphWeights "$model" "$recipe" | tee "$out/$form.weights" | head -1 | sed 's/.*graph //')"
  java -Xmx"$xmx" -cp "$cp" dev.graft.tools.cli.Graft train "$model" --recipe "$recipe" --task causal-lm \
    --train "$out/emma.txt" --test-fraction 0.2 --max-length 64 --batch-size "$batch" --epochs 1 \
    --threads "$threads" --seed 42 --lr 5e-3 --out "$out/$form-run" > "$out/$form.log" 2>&1 &
  pid=$!
  anon=0; start=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    a="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    h="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    [[ -n "$a" && "$a" -gt "$anon" ]] && anon="$a"
    [[ -n "$h" ]] && hwm="$h"
    sleep 0.1
  done
  wait "$pid"
  secs=$(( $(date +%s) - start ))
  ppl="$(grep -o '"test_perplexity":[0-9.]*' "$out/$form-run/metrics.jsonl" | tail -1 | cut -d: -f2)"
  rows+=("| $form | $weights | $((hwm / 1024)) MiB | $((anon / 1024)) MiB | $(printf '%.3f' "$ppl") | ${secs} s |")
  echo "$form: frozen $weights, peak RSS $((hwm / 1024)) MiB, peak RssAnon $((anon / 1024)) MiB, perplexity $ppl, $secs s"
done
echo
echo "decoder ${sizes[*]} (layers hidden heads kvHeads ffn positions), LoRA r8 all linears, batch $batch x 64, -Xmx$xmx, $threads threads"
echo "| weights | frozen in train graph | peak RSS | peak RssAnon | perplexity | wall |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
