"""Batch scoring of a CSV file with a saved bundle (``iomt-ids predict``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.loader import read_rows
from iomt_ids.exceptions import ConfigError, SchemaError

if TYPE_CHECKING:
    from iomt_ids.export.onnx import OnnxScorer

__all__ = ["BACKENDS", "predict_csv"]

log = logging.getLogger(__name__)


BACKENDS = ("auto", "torch", "onnx")


def predict_csv(
    model_dir: str | Path, input_csv: str | Path, output_csv: str | Path, backend: str = "auto"
) -> int:
    """Write one line per input row: ``row``, ``predicted_class``, ``score`` and ``p_<class>`` columns.

    Returns the number of rows scored. The input needs the model's release columns
    (any order); no label is needed.

    ``backend``: "torch" scores with the bundle; "onnx" with ONNX Runtime and the
    ``model.onnx`` written into the RUN_DIR by ``iomt-ids export`` (an error when
    either is missing); "auto" uses ONNX Runtime when both are there, else the bundle.
    Both apply the same cleaning policy and raise the same errors on bad values.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}; got {backend!r} instead.")
    bundle = load_bundle(model_dir)
    rows, release = read_rows(input_csv)
    if release != bundle.release:
        raise SchemaError(
            f"{input_csv}: rows are release {release} but the model was trained on release {bundle.release}."
        )
    matrix = rows.select(list(bundle.input_columns)).to_numpy()
    scorer = _onnx_scorer(Path(model_dir), bundle, backend)
    if scorer is not None:
        proba = scorer.predict_proba_matrix(matrix, source=str(input_csv))
    else:
        proba = bundle.predict_proba(matrix, source=str(input_csv))
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


def _onnx_scorer(model_dir: Path, bundle: ModelBundle, backend: str) -> OnnxScorer | None:
    """The ONNX Runtime scorer the backend choice asks for, or None for the bundle's own model."""
    if backend == "torch":
        return None
    from iomt_ids.export.onnx import ONNX_FILE, OnnxScorer, onnxruntime_available

    path = model_dir / ONNX_FILE
    if backend == "auto" and not (path.is_file() and onnxruntime_available()):
        return None
    if not path.is_file():
        raise ConfigError(
            f"{model_dir}: no {ONNX_FILE} here; run 'iomt-ids export --model {model_dir}' first."
        )
    log.info("scoring with ONNX Runtime (%s)", path)
    return OnnxScorer(path, bundle)
