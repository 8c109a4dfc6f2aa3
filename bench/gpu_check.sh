#!/usr/bin/env bash
# GPU check (issue 31, item 4): float32 against mixed_float16 on a GPU, never required.
#
# From the repository root with the venv active:   bash bench/gpu_check.sh
# On a machine with a GPU visible to TensorFlow it runs, each short and once per precision
# (float32, then train.precision=mixed_float16):
#   1. the default image fine-tune on a slice of $DATA (default /work/shared/data/hymenoptera/train),
#   2. the MiniLM fine-tune (model.architecture=minilm) on a slice of $SENTENCES (yelp_labelled.txt),
#   3. the batch job on the image run's SavedModel (dlpipe predict --artifact savedmodel over the folder),
#   4. serving: bench/serving_load.py against the image run (its auto artifact, batching on, 8 clients),
# and prints and writes the wall-clock seconds of each and the float32/mixed ratios to
# bench/results/gpu_check.json. Exports are float32 whatever the training precision, so 3 and 4
# should stay near 1.0x. Elsewhere it says so in one line and exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-/work/shared/data/hymenoptera/train}"
SENTENCES="${SENTENCES:-/work/shared/data/sentiment_sentences/yelp_labelled.txt}"
RESULT="${GPU_CHECK_RESULT:-$ROOT/bench/results/gpu_check.json}"
PY="${PYTHON:-python}"

# No NVIDIA device node and no nvidia-smi: no GPU, answered without importing TensorFlow.
if ! ls /dev/nvidia0 >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no GPU on this machine (no /dev/nvidia0, no nvidia-smi); nothing to check."
    exit 0
fi
GPUS="$("$PY" -c 'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' 2>/dev/null)" || {
    echo "gpu_check: $PY cannot import TensorFlow; activate dlpipe's venv (or set PYTHON) and run again."
    exit 1
}
if [ "$GPUS" = "0" ]; then
    echo "gpu_check: TensorFlow sees no GPU on this machine; nothing to check."
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
TIMES="$WORK/times.tsv"
SLICE="$WORK/sentences.txt"
head -n 400 "$SENTENCES" > "$SLICE"

timed() {  # timed NAME PRECISION COMMAND...: append "name precision seconds" to $TIMES
    local name="$1" precision="$2"; shift 2
    local start end
    start="$(date +%s.%N)"
    "$@" > "$WORK/$name-$precision.log" 2>&1 || { echo "gpu_check: $name ($precision) failed:"; tail -20 "$WORK/$name-$precision.log"; exit 1; }
    end="$(date +%s.%N)"
    printf '%s\t%s\t%s\n' "$name" "$precision" "$(awk "BEGIN { print $end - $start }")" >> "$TIMES"
    echo "  $name ($precision): $(tail -1 "$TIMES" | cut -f3) s"
}

for precision in float32 mixed_float16; do
    echo "gpu_check: $precision"
    timed image_finetune "$precision" dlpipe run image-classify --data "$DATA" --out "$WORK/image-$precision" \
        --set load.max_per_class=40 --set train.epochs=1 --set train.finetune_epochs=1 --set train.progress=none \
        --set train.tensorboard=false --set "train.precision=$precision"
    timed minilm_finetune "$precision" dlpipe run sentiment --data "$SLICE" --out "$WORK/minilm-$precision" \
        --set model.architecture=minilm --set train.epochs=1 --set train.progress=none \
        --set export.formats=[keras] --set "train.precision=$precision"
    timed batch_savedmodel "$precision" dlpipe predict "$WORK/image-$precision" "$DATA" --artifact savedmodel \
        --out "$WORK/predictions-$precision.jsonl"
    timed serving "$precision" "$PY" "$ROOT/bench/serving_load.py" --run "$WORK/image-$precision" \
        --artifact auto --modes on --clients 8 --requests 64
done

"$PY" - "$TIMES" "$RESULT" <<'EOF'
import json, subprocess, sys
from datetime import datetime, timezone

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
seconds = {}
for name, precision, value in rows:
    seconds.setdefault(name, {})[precision] = round(float(value), 1)
ratios = {n: round(s["float32"] / s["mixed_float16"], 2) for n, s in seconds.items()}
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gpu": gpu, "seconds": seconds,
          "float32_over_mixed_float16": ratios,
          "note": "wall-clock seconds of each command, TensorFlow start-up included; ratio > 1: mixed_float16 faster"}
with open(sys.argv[2], "w") as handle:
    json.dump(result, handle, indent=2)
for name, ratio in ratios.items():
    print(f"{name}: float32 {seconds[name]['float32']} s, mixed_float16 {seconds[name]['mixed_float16']} s, ratio {ratio}x")
print(f"written: {sys.argv[2]}")
EOF
