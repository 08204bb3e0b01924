"""Evaluate a saved bundle on labelled CSV files (labels from file names).

The evaluated rows are cleaned as ``iomt-ids train`` cleans its test split: duplicate
rows (features and label) are dropped, then rows whose features equal a row the model
was trained on (the bundle's ``train_rows.npy`` record); both counts go into
``duplicates_dropped``. Evaluating a bundle on the ``test/`` folder it was trained
beside therefore scores the same rows, with the same figures, as its ``metrics.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.dedup import FINGERPRINT_SCHEME, drop_duplicates, feature_fingerprints, in_sorted
from iomt_ids.data.loader import CSV_PATTERN, LoadedData, find_split_dirs, load_csv_files, load_split
from iomt_ids.evaluation.report import evaluate_predictions
from iomt_ids.exceptions import DataError, DatasetNotFoundError, SchemaError
from iomt_ids.workflows.train import encode_labels

__all__ = ["drop_training_rows", "evaluate_bundle", "resolve_eval_dir"]

log = logging.getLogger(__name__)

_EXPECTED = (
    f"expected a folder of {CSV_PATTERN} files, a folder with a 'test/' folder of them at or below it, "
    "or one CSV file named like the dataset's files"
)


def _holds_csvs(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(CSV_PATTERN))


def resolve_eval_dir(data: str | Path) -> Path:
    """Where the rows to evaluate are: a CSV file, or a folder of ``*.pcap.csv`` files.

    ``data`` may be

    * one CSV file (its name gives the label, as in the dataset), returned as is;
    * a folder holding ``*.pcap.csv`` files, returned as is;
    * a dataset folder: the ``test/`` folder of its one train/test pair, or, without a
      ``train/`` folder, the one ``test/`` folder holding ``*.pcap.csv`` files at or below it.

    Raises DatasetNotFoundError naming ``data`` and what was expected otherwise, or
    listing the candidates when several ``test/`` folders are found.
    """
    data = Path(data)
    if not data.exists():
        raise DatasetNotFoundError(f"{data}: does not exist; {_EXPECTED}.")
    if data.is_file():
        if not data.name.lower().endswith(".csv"):
            raise DatasetNotFoundError(f"{data}: not a CSV file; {_EXPECTED}.")
        return data
    if _holds_csvs(data):
        return data
    try:
        return find_split_dirs(data)[1]
    except DatasetNotFoundError as exc:
        if "several" in str(exc):
            raise
    tests = sorted(p for p in [data, *data.rglob("*")] if p.name.lower() == "test" and _holds_csvs(p))
    if not tests:
        raise DatasetNotFoundError(f"{data}: found no {CSV_PATTERN} files; {_EXPECTED}.")
    if len(tests) > 1:
        listed = ", ".join(str(t) for t in tests)
        raise DatasetNotFoundError(f"{data}: several 'test/' folders found ({listed}); point --data at one.")
    return tests[0]


def drop_training_rows(rows: LoadedData, bundle: ModelBundle) -> tuple[LoadedData, int | None]:
    """Drop the rows whose features equal a row ``bundle`` was trained on.

    Returns the remaining rows and how many were dropped, or (``rows``, None) with a
    warning when the bundle keeps no usable record of its training rows (bundles
    written before the record existed, or fine-tuned ones), so the leak cannot be checked.
    """
    record = bundle.training_fingerprints()
    info = bundle.meta.get("train_rows")
    scheme = info.get("scheme") if isinstance(info, dict) else None
    if record is None or scheme != FINGERPRINT_SCHEME:
        why = "keeps no record of its training rows" if record is None else f"records them as {scheme!r}"
        log.warning(
            "bundle %s %s: rows it was trained on cannot be recognised, so evaluation may count "
            "train/test leaks as correct predictions (retrain with this version to record them).",
            bundle.version, why,
        )  # fmt: skip
        return rows, None
    seen = in_sorted(record, feature_fingerprints(rows.table, bundle.input_columns))
    n_seen = int(seen.sum())
    return (rows.subset(~seen), n_seen) if n_seen else (rows, 0)


def _training_context(bundle: ModelBundle) -> dict[str, Any]:
    """How the bundle was trained, from its meta (``data``, ``preset``, ``train_config``).

    Only what the meta records is returned (a bundle from ``adapt`` or an older version
    may lack some), so the report leaves out what it cannot know instead of printing '?'.
    """
    meta = bundle.meta
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    config = meta.get("train_config") if isinstance(meta.get("train_config"), dict) else {}
    found = {
        "train_data": data.get("path"),
        "rows_train": data.get("rows_train"),
        "rows_val": data.get("rows_val"),
        "preset": meta.get("preset") or config.get("name"),
        "seed": config.get("seed"),
    }
    return {k: v for k, v in found.items() if v is not None}


def evaluate_bundle(
    model_dir: str | Path, data: str | Path, out: str | Path, progress: bool = False
) -> dict[str, Any]:
    """Score the labelled rows under ``data`` with the bundle in ``model_dir``; write results to ``out``.

    ``data``: see :func:`resolve_eval_dir`. Duplicate rows, then rows seen in training
    (:func:`drop_training_rows`), are dropped and counted in ``duplicates_dropped``
    (``test`` and ``cross_split``; ``cross_split`` is None when the bundle cannot tell).
    Returns the metrics written to ``out/metrics.json``.
    """
    bundle = load_bundle(model_dir)
    source = resolve_eval_dir(data)
    rows = (
        load_csv_files([source], progress=progress)
        if source.is_file()
        else load_split(source, progress=progress)
    )
    if rows.release != bundle.release:
        raise SchemaError(
            f"{source}: files are release {rows.release} but the model in {model_dir} was trained on "
            f"release {bundle.release}; evaluate with data of the model's release."
        )
    n_read = len(rows)
    rows, n_dup = drop_duplicates(rows)
    rows, n_cross = drop_training_rows(rows, bundle)
    if len(rows) == 0:
        raise DataError(
            f"{source}: all {n_read} rows are duplicates or rows the model in {model_dir} was trained on; "
            "nothing is left to evaluate."
        )
    y_true, classes = encode_labels(rows.labels, bundle.task)
    if tuple(classes) != tuple(bundle.classes):
        raise SchemaError(
            f"{model_dir}: bundle classes {bundle.classes} differ from task {bundle.task}'s {classes}."
        )
    proba = bundle.predict_proba(rows.to_numpy(), source=str(source))
    trained = _training_context(bundle)
    info = {
        "task": bundle.task,
        "model": bundle.model_name,
        "model_version": bundle.version,
        "release": rows.release,
        "data": str(source),
        "split": "all rows of the evaluated files, less duplicates and rows seen in training",
        **trained,
        "rows_read": n_read,
        "rows_test": len(rows),
        "duplicates_dropped": {"test": n_dup, "cross_split": n_cross},
        "train_overlap_checked": n_cross is not None,
    }
    return evaluate_predictions(out, y_true, proba.argmax(axis=1), bundle.classes, info=info)
