"""Batch scoring of a CSV file with a saved bundle (``iomt-ids predict``).

numpy, polars and the bundle code load on first use, so that :func:`check_input_csv`
and :func:`check_output_csv` stay cheap (the CLI runs them before anything heavy).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from iomt_ids.exceptions import ConfigError, DatasetNotFoundError, SchemaError

if TYPE_CHECKING:
    from iomt_ids.artifacts import ModelBundle
    from iomt_ids.export.onnx import OnnxScorer

__all__ = ["BACKENDS", "check_input_csv", "check_output_csv", "predict_csv"]

log = logging.getLogger(__name__)


#: Scoring backends of ``predict``: ``torch`` is kept as an alias of ``native``.
BACKENDS = ("auto", "native", "compiled", "onnx", "torch")

# First bytes of a capture file: pcap (both byte orders, micro- and nanosecond) and pcapng.
_CAPTURE_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "pcap",
    b"\xa1\xb2\xc3\xd4": "pcap",
    b"\x4d\x3c\xb2\xa1": "pcap",
    b"\xa1\xb2\x3c\x4d": "pcap",
    b"\x0a\x0d\x0d\x0a": "pcapng",
}


def check_input_csv(path: str | Path) -> None:
    """Refuse, with the likely cause, an input that is no comma-separated feature CSV.

    Raises DatasetNotFoundError when ``path`` is missing or a folder, and SchemaError
    for a capture file (pcap/pcapng: run ``iomt-ids extract`` first), an empty file,
    or a header that looks semicolon- or tab-separated. Reads only the first line.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"{path}: file does not exist.")
    if path.is_dir():
        raise DatasetNotFoundError(f"{path}: is a folder; expected a CSV file of feature rows.")
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    kind = _CAPTURE_MAGIC.get(head[:4])  # before splitting lines: pcapng's magic starts with "\n"
    if kind is not None:
        raise SchemaError(
            f"{path}: this is a capture ({kind}), not a CSV of feature rows; run "
            f"'iomt-ids extract {path} -o rows.csv' first and predict on rows.csv."
        )
    header = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if not header.strip():
        raise SchemaError(f"{path}: file is empty (no header line); expected a CSV of feature rows.")
    fields = header.split(",")
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if any(sep in f for f in fields):
            raise SchemaError(
                f"{path}: the header looks {name}-separated ({header[:60]!r}...); "
                "expected comma-separated columns, as the dataset's CSV files have."
            )


def check_output_csv(path: str | Path) -> None:
    """Refuse an output path whose folder is missing (it is not created) or that is a folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected the name of the CSV file to write.")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist; create it first"
        raise ConfigError(f"{path}: output folder {parent} {what}.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: output folder {parent} is not writable.")


def predict_csv(
    model_dir: str | Path, input_csv: str | Path, output_csv: str | Path, backend: str = "auto"
) -> int:
    """Write one line per input row: ``row``, ``predicted_class``, ``score`` and ``p_<class>`` columns.

    Returns the number of rows scored (0 for a header-only input, which gives a
    header-only output). The input needs the model's release columns (any order); no
    label is needed. The output's folder must exist (ConfigError otherwise).

    ``backend``:

    * "native" (alias "torch"): the bundle with its model's own library (PyTorch,
      LightGBM, NumPy for the forest);
    * "compiled": tree models through the compiled kernel (:mod:`iomt_ids.models.compiled`);
      ConfigError for a model without trees, CompileError when the kernel is unavailable;
    * "onnx": ONNX Runtime and the ``model.onnx`` written into the RUN_DIR by
      ``iomt-ids export`` (an error when either is missing);
    * "auto": tree models through the compiled kernel (the fastest, measured in
      ``benchmarks/results/trees-cpu.json``), else ONNX Runtime when ``model.onnx`` is
      there, else natively; other models through ONNX Runtime when ``model.onnx`` is
      there, else natively.

    Every backend applies the same cleaning policy and raises the same errors on bad values.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}; got {backend!r} instead.")
    check_output_csv(output_csv)
    check_input_csv(input_csv)

    import numpy as np
    import polars as pl

    from iomt_ids.artifacts import load_bundle
    from iomt_ids.data.loader import read_rows

    bundle = load_bundle(model_dir)
    rows, release = read_rows(input_csv)
    if release != bundle.release:
        raise SchemaError(
            f"{input_csv}: rows are release {release} but the model was trained on release {bundle.release}."
        )
    matrix = rows.select(list(bundle.input_columns)).to_numpy()
    scorer = _onnx_scorer(Path(model_dir), bundle, "native" if backend == "torch" else backend)
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
    out.write_csv(output_csv)
    log.info("scored %d rows of %s with %s -> %s", len(proba), input_csv, bundle.version, output_csv)
    return len(proba)


def _onnx_scorer(model_dir: Path, bundle: ModelBundle, backend: str) -> OnnxScorer | None:
    """The ONNX Runtime scorer the backend choice asks for, or None for the bundle's own model.

    For "native" and "compiled" the bundle's tree estimators are switched to that backend.
    """
    from iomt_ids.models.trees import tree_parts

    trees = tree_parts(bundle.estimator)
    if backend in ("native", "compiled"):
        if backend == "compiled" and not trees:
            raise ConfigError(
                f"--backend compiled applies to tree models (lightgbm, random_forest); {model_dir} holds "
                f"{bundle.model_name!r}: use native or onnx."
            )
        for est in trees:
            est.use_backend(backend)  # type: ignore[attr-defined]
        if backend == "compiled":
            for est in trees:
                est.compiled_tables()  # type: ignore[attr-defined]  # CompileError says why it cannot
        log.info("scoring with the %s backend", backend)
        return None
    from iomt_ids.export.onnx import ONNX_FILE, OnnxScorer, onnxruntime_available

    path = model_dir / ONNX_FILE
    if backend == "auto" and trees:
        from iomt_ids.models.compiled import CompileError

        try:
            for est in trees:
                est.compiled_tables()  # type: ignore[attr-defined]
        except CompileError as exc:
            if not (path.is_file() and onnxruntime_available()):
                return None  # the estimators fall back to their native model, with one warning
            log.warning("compiled tree scoring unavailable (%s); scoring with ONNX Runtime (%s).", exc, path)
            return OnnxScorer(path, bundle)
        log.info("scoring with the compiled tree backend")
        return None
    if backend == "auto" and not (path.is_file() and onnxruntime_available()):
        return None
    if not path.is_file():
        raise ConfigError(
            f"{model_dir}: no {ONNX_FILE} here; run 'iomt-ids export --model {model_dir}' first."
        )
    log.info("scoring with ONNX Runtime (%s)", path)
    return OnnxScorer(path, bundle)
