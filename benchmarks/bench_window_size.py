"""Does a model key on the window size? Family predicted per window stream, paper vs robust features.

In CICIoMT2024 (and in the lab runs extracted the same way) only the TCP/IP floods have W = 100 windows,
so ``Number``, the flag counts and ``Tot sum`` tell a model the window size. Here a 6-class model is
trained on lab run 1 (embedded, LAB traffic) with each feature set, and the shipped capture excerpts of
lab run 2 (benign, port scan, SYN flood) are cut into W = 10 and W = 100 windows: a model that does not key
on the window size names each capture's windows the same family in both streams.

Usage::

    python benchmarks/bench_window_size.py --out docs/results/window-size
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import machine

CAPTURES = {"Benign": "Benign", "Recon-Port_Scan": "RECON", "TCP_IP-DoS-SYN": "DoS"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="gru_dnn,lightgbm")
    a = ap.parse_args()
    import torch

    from iomt_ids.artifacts import load_bundle
    from iomt_ids.data.loader import DatasetSplits, load_split
    from iomt_ids.features import extract_file
    from iomt_ids.workflows.demo import embedded_lab_dir
    from iomt_ids.workflows.train import RunConfig, train_run

    torch.set_num_threads(1)
    info = machine()
    root = embedded_lab_dir()
    splits = DatasetSplits(load_split(root / "run1"), load_split(root / "run2"), root / "run1", root / "run2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            for fs in ("paper", "robust"):
                out = Path(tmp) / f"{model}-{fs}"
                m = train_run(RunConfig(data=root, task=6, model=model, out=out, preset="fast", feature_set=fs,
                                        device="cpu", progress=False), splits=splits)  # fmt: skip
                b = load_bundle(out)
                for cap, family in CAPTURES.items():
                    for w in (10, 100):
                        df, _ = extract_file(root / "captures" / f"{cap}_lab.pcap", window=w, progress=False)
                        pred = Counter(b.predict(df).tolist())
                        rows.append({"model": model, "feature_set": fs, "capture": cap, "window": w,
                                     "windows": len(df), "expected": family, "predicted": dict(pred.most_common()),
                                     "share_expected": pred[family] / len(df),
                                     "run2_macro_f1": m["macro_f1"]})  # fmt: skip
                        print(model, fs, cap, w, pred.most_common(3), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    body = {
        "command": "python benchmarks/bench_window_size.py " + " ".join(sys.argv[1:]),
        "data": "LAB traffic: trained on embedded lab run 1 (6 classes, preset fast, seed 0), windows of the "
        "shipped lab run 2 capture excerpts (src/iomt_ids/datasets/lab/captures)",
        "machine": info,
        "rows": rows,
    }
    (a.out / "results.json").write_text(json.dumps(body, indent=1))
    lines = ["| model | features | capture | W = 10: share named right | W = 100: share named right |",
             "|---|---|---|---|---|"]  # fmt: skip
    for model in a.models.split(","):
        for fs in ("paper", "robust"):
            for cap, family in CAPTURES.items():
                s = {r["window"]: r["share_expected"] for r in rows
                     if r["model"] == model and r["feature_set"] == fs and r["capture"] == cap}  # fmt: skip
                lines.append(f"| {model} | {fs} | {cap} ({family}) | {s[10]:.0%} | {s[100]:.0%} |")
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
