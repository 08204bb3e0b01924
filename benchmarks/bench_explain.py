"""Cost of one per-alert explanation (:func:`iomt_ids.explain.explain_rows`) per model kind.

Models are trained here, briefly, on the real CICIoMT2024 v2 sample rows
(../shared/data/ciciomt2024/v2/sample/train, ``--rows-per-file`` rows per file); the
explained rows are the sample's test rows the model alerts on (``1 - P(Benign) >= 0.5``),
with the benign training rows as the reference / baseline. Per model it reports
explanation rows/s (batch of all alerts, and one row at a time), the seconds per row,
and the model's plain scoring rows/s on the same rows for comparison.

Methods: LightGBM TreeSHAP (``pred_contrib``), exact interventional TreeSHAP for the
NumPy forest, integrated gradients (captum, 50 steps) for the deep models.

    python benchmarks/bench_explain.py --out benchmarks/results/explain-cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import REPO, RESULTS, cpu_seconds, machine, peak_rss_mb, write_result

SAMPLE = REPO / ".." / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
MODELS = ("lightgbm", "random_forest", "dnn", "lstm", "gru_dnn")


def load(split: str, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    from iomt_ids.data.labels import parse_file_name

    parts, labels = [], []
    for path in sorted((SAMPLE / split).glob("*.pcap.csv")):
        part = pd.read_csv(path, nrows=n)
        parts.append(part)
        labels += [parse_file_name(path).label] * len(part)
    if not parts:
        raise SystemExit(f"no sample rows under {SAMPLE / split}")
    return pd.concat(parts, ignore_index=True), np.asarray(labels, dtype=object)


def rate(fn: Any, n: int, repeat: int = 3) -> dict[str, float]:
    best, cpu = float("inf"), 0.0
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        cpu = cpu_seconds() - c0
    return {"rows_per_s": round(n / best, 1), "ms_per_row": round(1000 * best / n, 3),
            "rows_per_cpu_s": round(n / max(cpu, 1e-9), 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--rows-per-file", type=int, default=300)
    ap.add_argument("--test-rows-per-file", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "explain-cpu.json")
    args = ap.parse_args()

    import torch

    from iomt_ids.explain import explain_rows
    from iomt_ids.workflows import fit_bundle

    torch.set_num_threads(args.torch_threads)
    train, y = load("train", args.rows_per_file)
    test, _ = load("test", args.test_rows_per_file)
    benign = train[y == "Benign"]
    results: dict[str, Any] = {}
    for model in args.models:
        extra = {} if model in ("lightgbm", "random_forest") else {"epochs": args.epochs}
        bundle, _ = fit_bundle(train, y, task=6, model=model, seed=0, device="cpu", **extra)
        proba = bundle.predict_proba(test)
        alerts = test[1.0 - proba[:, list(bundle.classes).index("Benign")] >= 0.5].reset_index(drop=True)
        n = len(alerts)
        one = alerts.iloc[:20]
        method = explain_rows(bundle, alerts.iloc[:1], baseline=benign)[0][0]["method"]
        results[model] = {
            "method": method,
            "alerts": n,
            "explain_batch": rate(lambda b=bundle, a=alerts: explain_rows(b, a, baseline=benign), n),
            "explain_one_row": rate(
                lambda b=bundle, o=one: [
                    explain_rows(b, o.iloc[i : i + 1], baseline=benign) for i in range(len(o))
                ],
                len(one),
            ),
            "score_batch": rate(lambda b=bundle, a=alerts: b.predict_proba(a), n),
        }
        if model == "random_forest":
            results[model]["trees"] = len(bundle.estimator.roots)
            results[model]["nodes"] = len(bundle.estimator.left)
        print(model, results[model], flush=True)
    write_result(
        {
            "benchmark": "explain",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "data": {
                "source": str(SAMPLE.resolve()),
                "train_rows": len(train),
                "test_rows": len(test),
                "benign_reference_rows": len(benign),
                "task": 6,
                "note": "real CICIoMT2024 v2 sample rows; explained rows = test rows the model alerts on",
            },
            "torch_threads": args.torch_threads,
            "results": results,
            "peak_rss_mb": peak_rss_mb(),
            "machine": machine("cpu"),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
