"""Benchmark: the thread policy on an idle machine and beside other CPU-bound jobs.

The workload is one training job, as ``iomt-ids train --preset fast`` runs it: an
lstm_dnn (19 classes) on SYNTHETIC v2 rows (``benchmarks/synth.py``; never real data)
for ``--epochs`` epochs, in a fresh subprocess per measurement so that each starts its
own OpenMP runtime. Two configurations:

* ``torch_default``: what the project did before the policy (and what a plain PyTorch
  script does): one intra-op thread per core, OpenMP's default (spinning) wait policy;
* ``policy``: :func:`iomt_ids.runtime.apply_thread_policy` with no request, as every
  command applies it by default: threads = usable CPUs minus the load others cause,
  ``OMP_WAIT_POLICY=PASSIVE``.

Two machine states:

* ``idle``: nothing else started by the benchmark (the host may still be shared:
  the load average is recorded);
* ``contended``: ``--burners`` other processes, each a single-threaded busy loop of
  float work, started first; the workload begins once the 1-minute load average has
  risen to reflect them (the automatic policy reads it), at most ``--settle`` seconds.

Each cell is the median of ``--repeats`` runs of training rows/s. The ratio that
matters is within one machine state: policy / torch_default.

    python benchmarks/bench_threads.py --out benchmarks/results/threads-cpu.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import load_average, machine, write_result

HERE = Path(__file__).resolve().parent

_WORKLOAD = r"""
import json, os, sys, time
sys.path.insert(0, {here!r})
mode, rows, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "policy":
    from iomt_ids.runtime import apply_thread_policy
    policy = apply_thread_policy()
    threads, source = policy.threads, policy.source
import torch
if mode != "policy":
    threads, source = torch.get_num_threads(), "torch default"
from _common import synthetic_matrix
from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.data.split import stratified_split
from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.models import build_model
from iomt_ids.training import Trainer, get_preset
from iomt_ids.workflows.train import encode_labels
x_raw, labels = synthetic_matrix(rows, seed=0)
y, classes = encode_labels(labels, 19)
tr, va = stratified_split(y, 0.2, 0)
pre = Preprocessor(input_columns=V2_COLUMNS).fit(x_raw[tr])
x_tr, x_va = pre.transform(x_raw[tr]), pre.transform(x_raw[va])
model = build_model("lstm_dnn", x_tr.shape[1], len(classes))
cfg = get_preset("fast").with_overrides(max_epochs=epochs, patience=epochs + 1, seed=0)
t0 = time.perf_counter()
history = Trainer(model, cfg, device="cpu", progress=False).fit(
    x_tr.reshape(len(x_tr), 1, -1), y[tr], x_va.reshape(len(x_va), 1, -1), y[va])
wall = time.perf_counter() - t0
rps = [rec.get("train_rows_per_s") or rec.get("rows_per_s") for rec in history]
print(json.dumps({{"threads": threads, "source": source, "wall_s": wall,
                  "rows_per_s": len(tr) * epochs / wall, "epoch_rows_per_s": rps,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}}))
"""


def _burn(stop_at: float) -> None:
    x = 1.0001
    while time.time() < stop_at:
        for _ in range(100_000):
            x = x * 1.0000001 + 1e-9
    return None


def run_workload(mode: str, rows: int, epochs: int) -> dict[str, Any]:
    env = dict(os.environ)
    for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "IOMT_IDS_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    code = _WORKLOAD.format(here=str(HERE))
    out = subprocess.run(
        [sys.executable, "-c", code, mode, str(rows), str(epochs)],
        env=env,
        capture_output=True,
        text=True,
        cwd=HERE,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"workload {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(state: str, args: argparse.Namespace) -> dict[str, Any]:
    cell: dict[str, Any] = {"load_average_before": load_average()}
    for mode in ("torch_default", "policy"):
        runs = []
        for _ in range(args.repeats):
            runs.append(run_workload(mode, args.rows, args.epochs))
            print(f"{state:<10} {mode:<14} {runs[-1]['rows_per_s']:>10,.0f} rows/s  "
                  f"threads {runs[-1]['threads']} ({runs[-1]['source']})", file=sys.stderr)  # fmt: skip
        cell[mode] = {
            "median_rows_per_s": round(statistics.median(r["rows_per_s"] for r in runs)),
            "runs": runs,
        }
    cell["load_average_after"] = load_average()
    cell["policy_over_default"] = round(
        cell["policy"]["median_rows_per_s"] / cell["torch_default"]["median_rows_per_s"], 2
    )
    return cell


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=120_000, help="synthetic rows (80 %% train)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--burners", type=int, default=0, help="busy processes (default: one per usable CPU)")
    ap.add_argument("--settle", type=float, default=75.0, help="most seconds to wait for the load to rise")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from iomt_ids.runtime import usable_cpus

    burners = args.burners or usable_cpus()
    result: dict[str, Any] = {
        "benchmark": "bench_threads",
        "command": "python benchmarks/bench_threads.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "data": f"SYNTHETIC v2 rows (benchmarks/synth.py), {args.rows} rows, 19 classes, lstm_dnn, fast preset",
        "settings": {**vars(args), "out": str(args.out), "burners": burners},
        "states": {},
    }
    result["states"]["idle"] = measure("idle", args)
    stop_at = time.time() + 3600
    procs = [mp.Process(target=_burn, args=(stop_at,), daemon=True) for _ in range(burners)]
    for p in procs:
        p.start()
    try:
        t0 = time.time()
        while load_average()[0] < burners - 0.5 and time.time() - t0 < args.settle:
            time.sleep(2)
        result["states"]["contended"] = {"burners": burners, "settled_s": round(time.time() - t0, 1)}
        result["states"]["contended"].update(measure("contended", args))
    finally:
        for p in procs:
            p.terminate()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
