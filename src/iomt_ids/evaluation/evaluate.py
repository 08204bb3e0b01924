"""Evaluate a saved bundle on labelled CSV files (labels from file names)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iomt_ids.artifacts import load_bundle
from iomt_ids.data.dedup import drop_duplicates
from iomt_ids.data.loader import CSV_PATTERN, find_split_dirs, load_split
from iomt_ids.evaluation.report import evaluate_predictions
from iomt_ids.exceptions import SchemaError
from iomt_ids.training.pipeline import encode_labels

__all__ = ["evaluate_bundle", "resolve_eval_dir"]

log = logging.getLogger(__name__)


def resolve_eval_dir(data: str | Path) -> Path:
    """``data`` itself when it holds ``*.pcap.csv`` files, else the ``test/`` folder below it."""
    data = Path(data)
    if data.is_dir() and any(data.glob(CSV_PATTERN)):
        return data
    return find_split_dirs(data)[1]


def evaluate_bundle(
    model_dir: str | Path, data: str | Path, out: str | Path, progress: bool = False
) -> dict[str, Any]:
    """Score the labelled rows under ``data`` with the bundle in ``model_dir``; write results to ``out``."""
    bundle = load_bundle(model_dir)
    folder = resolve_eval_dir(data)
    rows = load_split(folder, progress=progress)
    if rows.release != bundle.release:
        raise SchemaError(
            f"{folder}: files are release {rows.release} but the model in {model_dir} was trained on "
            f"release {bundle.release}; evaluate with data of the model's release."
        )
    rows, n_dup = drop_duplicates(rows)
    y_true, classes = encode_labels(rows.labels, bundle.task)
    if tuple(classes) != tuple(bundle.classes):
        raise SchemaError(
            f"{model_dir}: bundle classes {bundle.classes} differ from task {bundle.task}'s {classes}."
        )
    proba = bundle.predict_proba(rows.to_numpy(), source=str(folder))
    info = {
        "task": bundle.task,
        "model": bundle.model_name,
        "model_version": bundle.version,
        "release": rows.release,
        "data": str(folder),
        "split": "all rows of the evaluated folder",
        "rows_train": bundle.meta.get("data", {}).get("rows_train"),
        "rows_test": len(rows),
        "duplicates_dropped": {"test": n_dup},
    }
    return evaluate_predictions(out, y_true, proba.argmax(axis=1), bundle.classes, info=info)
