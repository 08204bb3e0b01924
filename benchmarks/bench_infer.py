"""Benchmark: inference rows/s and one-row latency, raw rows in -> probabilities out.

For each model (default ``gru_dnn``) and each backend, on SYNTHETIC rows
(``benchmarks/synth.py``, in memory; never real data):

* ``torch_eager``: ``ModelBundle.predict_proba`` (NumPy preprocessing, the network as
  trained, ``torch.no_grad``) - what ``predict`` does without an export;
* ``torch_opt``: :func:`iomt_ids.export.inference_module` (preprocessing folded into
  the module, single-step recurrent rewrite, BatchNorm folded) under
  ``torch.inference_mode``, traced and frozen with TorchScript, large inputs in 8192-row chunks;
* ``torch_opt_bf16``: the same under bfloat16 autocast, with its deviation from float32
  reported (not parity-exact); only on CUDA and on CPUs with native bf16 (AMX/AVX-512-BF16);
* ``onnxruntime``: the exported graph in ONNX Runtime via
  :class:`iomt_ids.export.OnnxScorer` (NumPy validation of special values included,
  large inputs in 8192-row chunks).

rows/s at batch 1, 64, 4096 and 1 M rows; one-row latency p50/p99; peak RSS.
Weights are untrained (speed does not depend on them); the preprocessing is
fitted on the synthetic rows. ``--device cuda`` runs the torch backends on the GPU
(``torch.cuda.synchronize`` before every clock read).

    python benchmarks/bench_infer.py --out benchmarks/results/infer-cpu.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import cpu_seconds, machine, one_row_latency, peak_rss_mb, sync, synthetic_matrix, write_result

from iomt_ids.artifacts import ModelBundle
from iomt_ids.data.labels import CLASSES
from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.export import OnnxScorer, export_onnx, inference_module, onnxruntime_available
from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.models import build_model
from iomt_ids.models.base import TorchEstimator
from iomt_ids.training.trainer import cpu_has_native_bf16

#: rows per call of the optimised torch module on large inputs (activations stay in cache)
CHUNK = 8192


def make_bundle(model: str, x: np.ndarray, task: int = 19) -> ModelBundle:
    pre = Preprocessor(input_columns=V2_COLUMNS).fit(x[:200_000])
    torch.manual_seed(0)
    net = build_model(model, pre.n_features_out, len(CLASSES[task])).eval()
    return ModelBundle(TorchEstimator(model, net), pre, CLASSES[task], task, "v2")


def throughput(fn: Any, x: np.ndarray, batch: int, budget_s: float, device: str) -> dict[str, Any]:
    """rows/s of ``fn`` over consecutive batches of ``x``, for about ``budget_s`` seconds."""
    fn(x[:batch])  # warm-up
    n, rows, cpu0, t0 = len(x), 0, cpu_seconds(), time.perf_counter()
    start = 0
    while True:
        if start + batch > n:
            start = 0
        fn(x[start : start + batch])
        sync(device)
        rows += batch
        start += batch
        elapsed = time.perf_counter() - t0
        if elapsed >= budget_s and rows >= batch:
            break
    cpu = cpu_seconds() - cpu0
    return {
        "batch": batch,
        "rows": rows,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed),
        "rows_per_cpu_s": round(rows / cpu) if cpu > 0 else None,
    }


def backends(bundle: ModelBundle, device: str, tmp: Path, sample: np.ndarray) -> dict[str, Any]:
    """name -> callable(raw float64 rows) -> probabilities (numpy)."""
    out: dict[str, Any] = {"torch_eager": bundle.predict_proba}
    if device != "cpu":
        bundle.torch_module.to(device)
    mod = inference_module(bundle, optimize=True).to(device)
    with torch.inference_mode():
        traced = torch.jit.freeze(torch.jit.trace(mod, torch.from_numpy(sample[:64].copy()).to(device)))

    def torch_opt(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            if len(x) <= CHUNK:
                return traced(torch.from_numpy(x).to(device)).cpu().numpy()
            return np.concatenate(
                [
                    traced(torch.from_numpy(x[i : i + CHUNK]).to(device)).cpu().numpy()
                    for i in range(0, len(x), CHUNK)
                ]
            )

    out["torch_opt"] = torch_opt

    def torch_opt_bf16(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
            return mod(torch.from_numpy(x).to(device)).float().cpu().numpy()

    if device != "cpu" or cpu_has_native_bf16():  # emulated bf16 is only slower (measured 0.3x)
        out["torch_opt_bf16"] = torch_opt_bf16
    if onnxruntime_available() and device == "cpu":
        path = export_onnx(bundle, tmp / "model.onnx")
        scorer = OnnxScorer(path, bundle, threads=torch.get_num_threads())
        out["onnxruntime"] = scorer.predict_proba_matrix
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gru_dnn", help="comma-separated model names")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the largest batch")
    ap.add_argument("--batches", default="1,64,4096,full")
    ap.add_argument("--seconds", type=float, default=3.0, help="time budget per (backend, batch)")
    ap.add_argument("--latency-calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--quick", action="store_true", help="100 k rows, 1 s per point, 500 latency calls")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.seconds, args.latency_calls = 100_000, 1.0, 500
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    x, _ = synthetic_matrix(args.rows, seed=1)
    result: dict[str, Any] = {
        "benchmark": "bench_infer",
        "machine": machine(device),
        "data": f"SYNTHETIC v2 rows (benchmarks/synth.py), {args.rows} rows, float64 raw (inf/NaN kept)",
        "settings": {**vars(args), "out": str(args.out), "torch_threads": torch.get_num_threads()},
        "models": {},
    }
    for model in args.models.split(","):
        bundle = make_bundle(model, x)
        ref = bundle.predict_proba(x[:4096])
        entry: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, fn in backends(bundle, device, Path(tmp), x).items():
                diff = float(np.abs(fn(x[:4096]).astype(np.float64) - ref).max())
                rec: dict[str, Any] = {"max_abs_diff_vs_eager": diff, "throughput": []}
                for b in args.batches.split(","):
                    batch = len(x) if b == "full" else int(b)
                    budget = args.seconds if batch > 1 else min(args.seconds, 2.0)
                    rec["throughput"].append(throughput(fn, x, batch, budget, device))
                rec["latency_one_row"] = one_row_latency(fn, x, args.latency_calls, warmup=20, device=device)
                rec["peak_rss_mb_after"] = peak_rss_mb()
                entry[name] = rec
        result["models"][model] = entry
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
