"""Transfer without adaptation: models trained on the real CICIoMT2024 sample, scored on lab traffic.

Each model is trained with ``train_run`` on the REAL CICIoMT2024 v2 sample
(``../shared/data/ciciomt2024/v2/sample``, shipped train/test split) and then evaluated, row by row,
on the feature rows of embedded lab run 2 (LAB traffic, not CICIoMT2024: ``iomt_ids/datasets/lab/run2``).
It prints and writes accuracy, macro-F1 and benign recall on both, the numbers behind the README's
"Transfer experiments (a)" table: a model does not carry over to a network it was not trained on.

Usage::

    python benchmarks/bench_transfer.py --out docs/results/transfer
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import REPO, machine

SAMPLE = REPO / ".." / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
RUNS = [("gru_dnn", 2), ("gru_dnn", 6), ("random_forest", 2), ("random_forest", 6), ("random_forest", 19)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import torch

    from iomt_ids.artifacts import load_bundle
    from iomt_ids.data.loader import load_split
    from iomt_ids.evaluation.metrics import compute_metrics
    from iomt_ids.workflows.demo import embedded_lab_dir
    from iomt_ids.workflows.train import RunConfig, encode_labels, train_run

    if not SAMPLE.is_dir():
        sys.exit(f"bench_transfer: {SAMPLE} not found (the real CICIoMT2024 sample lives in ../shared).")
    torch.set_num_threads(1)
    info = machine()
    lab = load_split(embedded_lab_dir() / "run2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, task in RUNS:
            out = Path(tmp) / f"{model}-{task}"
            own = train_run(RunConfig(data=SAMPLE, task=task, model=model, out=out, preset="fast", device="cpu",
                                      progress=False))  # fmt: skip
            b = load_bundle(out)
            y, classes = encode_labels(lab.labels, task)
            pred = b.predict_proba(lab.to_numpy(), source="lab run 2").argmax(axis=1)
            m = compute_metrics(y, pred, classes)
            benign = list(classes).index("Benign")
            rows.append({
                "model": model, "task": task,
                "sample_test": {"accuracy": own["accuracy"], "macro_f1": own["macro_f1"]},
                "lab_run2": {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "rows": int(len(y)),
                             "benign_recall": float((pred[y == benign] == benign).mean()),
                             "attack_share": float((y != benign).mean())},
            })  # fmt: skip
            print(rows[-1], flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    body = {
        "command": "python benchmarks/bench_transfer.py " + " ".join(sys.argv[1:]),
        "data": "trained on the REAL CICIoMT2024 v2 sample (shipped split, de-duplicated; preset fast, seed 0); "
        "scored on embedded lab run 2 (LAB traffic: our lab's captures, all rows)",
        "machine": info,
        "rows": rows,
    }
    (a.out / "results.json").write_text(json.dumps(body, indent=1))
    lines = ["| model | task | sample test: accuracy / macro-F1 | lab run 2: accuracy / macro-F1 | benign recall on lab |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        s, lr = r["sample_test"], r["lab_run2"]
        lines.append(f"| {r['model']} | {r['task']} | {s['accuracy']:.3f} / {s['macro_f1']:.3f} | "
                     f"{lr['accuracy']:.3f} / {lr['macro_f1']:.3f} | {lr['benign_recall']:.3f} |")  # fmt: skip
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
