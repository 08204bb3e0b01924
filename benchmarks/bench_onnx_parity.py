"""ONNX export parity on the real sample: every model kind, preprocessing folded in.

For each model, one task (default 19 classes), seed 0, on the REAL CICIoMT2024 v2 sample
(``../shared/data/ciciomt2024/v2/sample``): train briefly (``fast`` preset, ``--epochs``
epochs for the deep models), export with ``iomt-ids export``'s code path, and score the
sample's test rows (raw, as the CSVs hold them) with the bundle and with ONNX Runtime.
Reported per model: the largest absolute difference of the probabilities, and whether
the predicted classes agree on every row. The test bound is 1e-5.

    python benchmarks/bench_onnx_parity.py --out benchmarks/results/onnx-parity.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, machine, write_result

SAMPLE = REPO.parent / "shared" / "data" / "ciciomt2024" / "v2" / "sample"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--models", default="dnn,lstm,gru,lstm_dnn,gru_dnn,lightgbm,random_forest")
    ap.add_argument("--task", type=int, default=19)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(
            f"{args.data}: the real sample is not here (it lives in ../shared beside the checkout)."
        )
    from iomt_ids.runtime import apply_thread_policy

    apply_thread_policy(args.threads)
    from iomt_ids.data.loader import load_dataset
    from iomt_ids.export.onnx import OnnxScorer, export_onnx
    from iomt_ids.workflows.train import RunConfig, train_run

    splits = load_dataset(args.data, progress=False)
    raw_test = splits.test.table.to_numpy()
    result: dict[str, Any] = {
        "benchmark": "bench_onnx_parity",
        "command": "python benchmarks/bench_onnx_parity.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "data": f"REAL CICIoMT2024 v2 sample ({args.data}), shipped split; models trained on train/ (fast preset, "
        f"{args.epochs} epochs for deep models, seed 0); parity on the {len(raw_test)} raw test rows",
        "settings": {**vars(args), "data": str(args.data), "out": str(args.out)},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            run = Path(tmp) / model
            cfg = RunConfig(data=args.data, task=args.task, model=model, out=run, preset="fast",
                            epochs=args.epochs, seed=0, device="cpu", progress=False)  # fmt: skip
            train_run(cfg, splits=splits)
            from iomt_ids.artifacts import load_bundle

            bundle = load_bundle(run)
            t0 = time.perf_counter()
            try:
                onnx_path = export_onnx(bundle, run / "model.onnx")
            except Exception as exc:  # noqa: BLE001 - report a kind the exporter refuses, do not stop
                result["models"][model] = {"exported": False, "error": str(exc)}
                print(f"{model:<14} not exported: {exc}", file=sys.stderr)
                continue
            export_s = time.perf_counter() - t0
            x = bundle._matrix(raw_test, "test rows")
            ref = bundle.predict_proba(x).astype(np.float64)
            got = OnnxScorer(onnx_path, bundle).predict_proba_matrix(x).astype(np.float64)
            diff = float(np.abs(ref - got).max(initial=0.0))
            same = bool((ref.argmax(1) == got.argmax(1)).all())
            result["models"][model] = {
                "exported": True,
                "max_abs_diff": diff,
                "classes_identical": same,
                "rows": len(x),
                "export_seconds": round(export_s, 2),
            }
            print(
                f"{model:<14} max |p_bundle - p_onnx| = {diff:.2e}  classes identical: {same}",
                file=sys.stderr,
            )
    diffs = [m["max_abs_diff"] for m in result["models"].values() if m.get("exported")]
    result["max_abs_diff_range"] = [min(diffs), max(diffs)] if diffs else None
    write_result(result, args.out)


if __name__ == "__main__":
    main()
