"""Choose the ``tuned`` deep recipe on the validation split only (never the test folder).

Reads only ``DATA/train``, drops duplicate rows, holds out the same seeded, stratified
20 % the pipeline uses for early stopping, and prints one JSON line per candidate with
the validation macro-F1 (LightGBM included as the bar to reach). Usage::

    python benchmarks/tune_deep.py --data ../shared/data/ciciomt2024/v2/sample --task 19 \
        --model dnn --candidates fast_nolog,log,log_wce,log_wide,log_wce_wide,log_wide_long,lightgbm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.metrics import f1_score

from iomt_ids.data.dedup import drop_duplicates
from iomt_ids.data.loader import find_split_dirs, load_split
from iomt_ids.data.split import stratified_split
from iomt_ids.training.config import TrainConfig, get_preset
from iomt_ids.workflows.recipes import preprocessor_for
from iomt_ids.workflows.train import encode_labels, fit_on_arrays

_BASE = {
    "lr": 3e-3,
    "batch_size": 1024,
    "max_epochs": 60,
    "patience": 10,
    "schedule": "cosine",
    "warmup_epochs": 2,
}
_WIDE = {"dense_units": (256, 128), "dropout": 0.1}
_LONG = {"max_epochs": 150, "patience": 20}
#: name -> (TrainConfig fields, preprocessing of preset, model kwargs)
CANDIDATES: dict[str, tuple[dict, str, dict]] = {
    "fast_nolog": (_BASE, "fast", {}),
    "log": (_BASE, "tuned", {}),
    "log_wce": ({**_BASE, "loss": "weighted_ce"}, "tuned", {}),
    "log_focal": ({**_BASE, "loss": "focal"}, "tuned", {}),
    "log_wide": (_BASE, "tuned", _WIDE),
    "log_wce_wide": ({**_BASE, "loss": "weighted_ce"}, "tuned", _WIDE),
    "log_wide_long": ({**_BASE, **_LONG}, "tuned", _WIDE),
    "log_wide_full": (
        {**_BASE, "max_epochs": 150, "patience": 150},
        "tuned",
        _WIDE,
    ),  # whole cosine, best val loss
    "log_wider_long": ({**_BASE, **_LONG}, "tuned", {"dense_units": (512, 256, 128), "dropout": 0.1}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--task", type=int, default=19)
    ap.add_argument("--model", default="dnn")
    ap.add_argument("--candidates", default=",".join(CANDIDATES) + ",lightgbm")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train, _ = drop_duplicates(load_split(find_split_dirs(args.data)[0]))
    x, (y, classes) = train.to_numpy(), encode_labels(train.labels, args.task)
    _, va = stratified_split(y, 0.2, args.seed)
    for name in args.candidates.split(","):
        t0 = time.perf_counter()
        if name == "lightgbm":
            model, cfg, pre, kw = "lightgbm", get_preset("paper").with_overrides(seed=args.seed), None, {}
        else:
            fields, preset, kw = CANDIDATES[name]
            model = args.model
            cfg = TrainConfig(name="custom", seed=args.seed, **fields)  # sizes come from kw only
            pre = preprocessor_for(model, preset, train.columns)
        bundle, history, _ = fit_on_arrays(
            x, y, release=train.release, columns=train.columns, classes=classes, task=args.task, model=model,
            config=cfg, device="cpu", model_kwargs=kw, preprocessor=pre,
        )  # fmt: skip
        pred = bundle.predict_proba(x[va]).argmax(axis=1)
        print(json.dumps({
            "candidate": name, "model": model, "task": args.task, "seed": args.seed,
            "val_macro_f1": round(float(f1_score(y[va], pred, average="macro")), 4),
            "epochs": len(history), "best_epoch": history.best_epoch,
            "seconds": round(time.perf_counter() - t0, 1),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
