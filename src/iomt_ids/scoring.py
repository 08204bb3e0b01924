"""Batch scoring of a CSV file with a saved bundle (``iomt-ids predict``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from iomt_ids.artifacts import load_bundle
from iomt_ids.data.loader import read_rows
from iomt_ids.exceptions import SchemaError

__all__ = ["predict_csv"]

log = logging.getLogger(__name__)


def predict_csv(model_dir: str | Path, input_csv: str | Path, output_csv: str | Path) -> int:
    """Write one line per input row: ``row``, ``predicted_class``, ``score`` and ``p_<class>`` columns.

    Returns the number of rows scored. The input needs the model's release columns
    (any order); no label is needed.
    """
    bundle = load_bundle(model_dir)
    rows, release = read_rows(input_csv)
    if release != bundle.release:
        raise SchemaError(
            f"{input_csv}: rows are release {release} but the model was trained on release {bundle.release}."
        )
    proba = bundle.predict_proba(rows.select(list(bundle.input_columns)).to_numpy(), source=str(input_csv))
    best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
    out = pl.DataFrame(
        {
            "row": np.arange(len(proba)),
            "predicted_class": np.asarray(bundle.classes, dtype=object)[best].astype(str),
            "score": proba.max(axis=1) if len(proba) else np.zeros(0),
            **{f"p_{c}": proba[:, i] for i, c in enumerate(bundle.classes)},
            "model_version": [bundle.version] * len(proba),
        }
    )
    Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
    out.write_csv(output_csv)
    log.info("scored %d rows of %s with %s -> %s", len(proba), input_csv, bundle.version, output_csv)
    return len(proba)
