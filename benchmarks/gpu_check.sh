#!/usr/bin/env bash
# The GPU measurements of the performance issue, as one bounded script for a lent
# H100/H200 (the `device` tool's `run`). Results go to $OUT (or benchmarks/results).
#
# The device image has python3 with torch (CUDA), numpy, pandas, scikit-learn,
# safetensors and onnxruntime, but no polars and no internet: carry polars as wheels
#   mkdir -p .whl && pip download --no-deps -d .whl polars polars-runtime-32
# and call run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540).
# The project itself runs from src/ (PYTHONPATH), not installed.
#
# Steps (each bounded; total about 6-8 minutes on an H100/H200):
#   1. what the machine is (nvidia-smi, torch, CUDA)
#   2. bench_infer on CUDA: 1 M rows, batches 1 / 64 / 4096 / 1 M, one-row latency
#   3. bench_train on CUDA, full size (7.17 M synthetic rows -> 5.7 M train), every deep
#      model: paper-style batch-64 loop (capped at BASELINE_S seconds), then the `fast`
#      preset for FAST_EPOCHS epochs at FAST_BATCH rows per step
#
# CPU dry run of the same logic (small sizes):  DEVICE=cpu ROWS=60000 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
ROWS=${ROWS:-7170000}
INFER_ROWS=${INFER_ROWS:-1000000}
BASELINE_S=${BASELINE_S:-30}
FAST_EPOCHS=${FAST_EPOCHS:-3}
FAST_BATCH=${FAST_BATCH:-16384}
FAST_LR=${FAST_LR:-0.01}
OUT=${OUT:-benchmarks/results}
PY=${PY:-python3}
mkdir -p "$OUT"

if [ -d .whl ] && ! $PY -c "import polars" 2>/dev/null; then
  $PY -m pip install -q --no-deps --no-index .whl/*.whl || echo "warning: could not install the carried wheels"
fi
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"

step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch, polars; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'polars', polars.__version__)" || exit 1

step "bench_infer ($DEVICE, $INFER_ROWS rows)"
timeout 240 $PY benchmarks/bench_infer.py --device "$DEVICE" --rows "$INFER_ROWS" --seconds 2 \
  --latency-calls 1000 --out "$OUT/infer-$DEVICE.json" >/dev/null || echo "bench_infer failed or timed out (rc $?)"

step "bench_train ($DEVICE, $ROWS rows, fast batch $FAST_BATCH)"
timeout 420 $PY benchmarks/bench_train.py --device "$DEVICE" --models all --rows "$ROWS" --presets fast \
  --baseline-epochs 1 --max-epoch-seconds "$BASELINE_S" --epochs "$FAST_EPOCHS" \
  --fast-batch "$FAST_BATCH" --fast-lr "$FAST_LR" --out "$OUT/train-$DEVICE.json" >/dev/null \
  || echo "bench_train failed or timed out (rc $?)"

step "summary"
$PY - "$OUT" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path
out, device = Path(sys.argv[1]), sys.argv[2]
for name in (f"infer-{device}.json", f"train-{device}.json"):
    path = out / name
    if not path.exists():
        print(name, "missing")
        continue
    d = json.loads(path.read_text())
    for model, entry in d["models"].items():
        for key, run in entry.items():
            if not isinstance(run, dict):
                continue
            if "throughput" in run:
                print(name, model, key, [(t["batch"], t["rows_per_s"]) for t in run["throughput"]],
                      run.get("latency_one_row", {}).get("p99_ms"))
            elif "epochs" in run:
                print(name, model, key, "median rows/s", run.get("median_rows_per_s"),
                      "x", run.get("speedup_rows_per_s"), "val acc", run.get("final_val_accuracy"),
                      "epoch s", [e.get("elapsed_s") for e in run["epochs"]])
EOF
