"""Model bundles: one directory that holds everything needed to score rows.

Layout of a bundle directory::

    bundle.json          format, model name/kind/arguments, task, classes, release,
                         input columns, preprocessing state, training config,
                         data summary, metrics summary, package versions, version id
    model.safetensors    weights of a PyTorch model (no pickle)
    (other estimator kinds store their own non-pickle files, e.g. LightGBM text)
    train_rows.npy       sorted uint64 fingerprints of the training rows' features
                         (:func:`~iomt_ids.data.dedup.feature_fingerprints`), so that
                         ``iomt-ids evaluate`` can drop test rows the model was trained on

The version id (``<model>-<task>c-<digest>``) is a digest of the weights file(s) the
estimator names, the preprocessing state and the class names only: other files in the
folder (metrics, history, an exported ONNX model) do not change it.

:func:`load_bundle` checks the format and that the preprocessing state matches the
declared release schema, and treats bundle.json as untrusted input: file names must
stay inside the bundle folder (:func:`bundle_member`) and model arguments within
:data:`MODEL_KWARG_LIMITS`. :meth:`ModelBundle.predict_proba` refuses input whose
columns do not match, naming the missing and unexpected ones.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iomt_ids.data.dedup import FINGERPRINT_SCHEME
from iomt_ids.data.preprocess import INF_ALLOWED, NAN_ALLOWED, Preprocessor
from iomt_ids.exceptions import BundleError, SchemaError
from iomt_ids.features.schema import columns_for
from iomt_ids.models.base import (
    BUNDLE_META,
    ESTIMATORS,
    WEIGHT_FIELDS,
    Estimator,
    bundle_member,
    json_default,
    weight_files,
)

__all__ = [
    "BUNDLE_FORMAT",
    "TRAIN_ROWS_FILE",
    "json_default",
    "ModelBundle",
    "load_bundle",
    "package_versions",
]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "iomt-ids-bundle/1"
_META = BUNDLE_META

#: File of the training-row fingerprints inside a bundle folder.
TRAIN_ROWS_FILE = "train_rows.npy"


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a bundle depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("iomt-ids", "torch", "numpy", "scikit-learn", "polars", "lightgbm", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _weights_digest(
    directory: Path, est_meta: dict[str, Any], preprocessing: dict[str, Any], classes: list[str]
) -> str:
    """SHA-256 of the weights file(s), the preprocessing state and the class names, nothing else."""
    names = weight_files(est_meta)
    if not names:
        raise BundleError(
            f"{directory}: the estimator named no weights file (expected one of {list(WEIGHT_FIELDS)} in what "
            "its save() returned)."
        )
    h = hashlib.sha256()
    for name in names:
        h.update(b"file\0" + name.encode() + b"\0")
        with (directory / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    h.update(b"preprocessing\0" + json.dumps(preprocessing, sort_keys=True, default=json_default).encode())
    h.update(b"classes\0" + json.dumps(list(classes)).encode())
    return h.hexdigest()


@dataclass
class ModelBundle:
    """A fitted model with its preprocessing, labels and schema.

    Attributes
    ----------
    estimator: the fitted model (see :class:`Estimator`).
    preprocessor: the fitted :class:`~iomt_ids.data.preprocess.Preprocessor`.
    classes: class names, in the order of the probability columns.
    task: 2, 6 or 19.
    release: "v1" or "v2", the schema of the rows the bundle scores.
    meta: everything else saved in bundle.json (config, data summary, metrics, versions).
    train_rows: sorted, unique uint64 fingerprints of the training rows' features
        (:func:`~iomt_ids.data.dedup.feature_fingerprints`), or None; saved as
        ``train_rows.npy``. Loaded bundles read it on demand (:meth:`training_fingerprints`).
    source: the folder the bundle was loaded from (None for a bundle made in memory).
    """

    estimator: Estimator
    preprocessor: Preprocessor
    classes: tuple[str, ...]
    task: int
    release: str
    meta: dict[str, Any] = field(default_factory=dict)
    train_rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: Path | None = field(default=None, repr=False, compare=False)

    # -- identity --------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.estimator.name

    @property
    def version(self) -> str:
        """A stable id of these weights: ``<model>-<task>c-<digest>`` (set when saved).

        The digest covers the weights file(s), the preprocessing state and the class
        names: the same model saved twice, anywhere, gets the same id.
        """
        return str(self.meta.get("version", f"{self.model_name}-{self.task}c-unsaved"))

    def training_fingerprints(self) -> np.ndarray | None:
        """Sorted uint64 fingerprints of the training rows, or None when the bundle has no record.

        Read from the bundle folder's ``train_rows.npy`` (``allow_pickle=False``) the first
        time; BundleError when the file is missing or not a sorted 1-D uint64 array.
        """
        if self.train_rows is not None:
            return self.train_rows
        info = self.meta.get("train_rows")
        if not isinstance(info, dict) or self.source is None:
            return None
        path = bundle_member(self.source, info.get("file"), "train_rows.file")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path}: cannot read the training-row record ({exc}).") from None
        if arr.dtype != np.uint64 or arr.ndim != 1 or (len(arr) > 1 and not (arr[1:] > arr[:-1]).all()):
            raise BundleError(
                f"{path}: expected a sorted 1-D array of unique uint64 fingerprints; got {arr.dtype} {arr.shape}."
            )
        self.train_rows = arr
        return arr

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.preprocessor.input_columns

    @property
    def nan_allowed_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.input_columns if c in NAN_ALLOWED)

    @property
    def inf_allowed_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.input_columns if c in INF_ALLOWED)

    @property
    def torch_module(self) -> Any:
        return getattr(self.estimator, "module", None)

    # -- scoring ---------------------------------------------------------------
    def _matrix(self, rows: pd.DataFrame | np.ndarray, source: str) -> np.ndarray:
        cols = self.input_columns
        if isinstance(rows, pd.DataFrame):
            have = [str(c).strip() for c in rows.columns]
            missing = [c for c in cols if c not in have]
            extra = [c for c in have if c not in cols]
            if missing or extra:
                raise SchemaError(
                    f"{source}: columns do not match the model's {self.release} schema "
                    f"({len(cols)} columns). Missing: {missing or 'none'}; unexpected: {extra or 'none'}."
                )
            renamed = rows.set_axis(have, axis=1)
            bad = [c for c in cols if not pd.api.types.is_numeric_dtype(renamed[c])]
            if bad:
                raise SchemaError(
                    f"{source}: columns {bad} must be numeric; got {[str(renamed[c].dtype) for c in bad]}."
                )
            return renamed[list(cols)].to_numpy(dtype=np.float64)
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(cols):
            raise SchemaError(
                f"{source}: expected an array of shape (n, {len(cols)}) in the {self.release} column order; "
                f"got {x.shape}."
            )
        return x

    def transform(self, rows: pd.DataFrame | np.ndarray, source: str = "input") -> np.ndarray:
        """Raw rows -> the model's float32 input (cleaned, selected, scaled)."""
        return self.preprocessor.transform(self._matrix(rows, source), source)

    def predict_proba(self, rows: pd.DataFrame | np.ndarray, source: str = "input") -> np.ndarray:
        """Class probabilities, columns in the order of :attr:`classes`."""
        x = self.transform(rows, source)
        if x.shape[0] == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.estimator.predict_proba(x)

    def predict(self, rows: pd.DataFrame | np.ndarray, source: str = "input") -> np.ndarray:
        """Predicted class names."""
        proba = self.predict_proba(rows, source)
        return (
            np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
            if len(proba)
            else np.array([], object)
        )

    # -- persistence -----------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the bundle into ``directory`` (created if needed); returns it.

        Writes the estimator's files, ``train_rows.npy`` when the bundle has a record of
        its training rows (:attr:`train_rows`, or the file of the bundle it was loaded
        from), and bundle.json with the version id (see :attr:`version`). A bundle
        without a record (e.g. one fine-tuned on further rows) saves none.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        est_meta = self.estimator.save(directory)
        meta = dict(self.meta)
        record = self.training_fingerprints()
        meta.pop("train_rows", None)
        if record is not None:
            np.save(
                directory / TRAIN_ROWS_FILE, np.ascontiguousarray(record, dtype=np.uint64), allow_pickle=False
            )
            meta["train_rows"] = {
                "file": TRAIN_ROWS_FILE,
                "rows": len(record),
                "scheme": self.meta.get("train_rows", {}).get("scheme", FINGERPRINT_SCHEME),
                "columns": list(self.input_columns),
            }
        meta.update(
            {
                "format": BUNDLE_FORMAT,
                "model_name": self.model_name,
                "estimator": {"kind": self.estimator.kind, **est_meta},
                "task": self.task,
                "classes": list(self.classes),
                "release": self.release,
                "input_columns": list(self.input_columns),
                "preprocessing": self.preprocessor.to_dict(),
                "versions": package_versions(),
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
        )
        digest = _weights_digest(directory, est_meta, meta["preprocessing"], meta["classes"])
        meta["version"] = f"{self.model_name}-{self.task}c-{digest[:12]}"
        self.meta = meta
        (directory / _META).write_text(json.dumps(meta, indent=2, default=json_default))
        return directory


def load_bundle(directory: str | Path) -> ModelBundle:
    """Load a bundle written by :meth:`ModelBundle.save`; no pickle is involved.

    bundle.json is checked before anything is read or built from it: file names must
    stay inside ``directory`` and model arguments within :data:`MODEL_KWARG_LIMITS`.
    The training-row record is not read here (see :meth:`ModelBundle.training_fingerprints`).

    Raises BundleError when the directory, bundle.json or the weights are missing, do
    not fit, or bundle.json names a file outside the folder or out-of-bounds model
    arguments (the message names bundle.json, the field and the value), and
    SchemaError when the stored schema is not the declared release's.
    """
    directory = Path(directory)
    meta_path = directory / _META
    if not directory.is_dir():
        raise BundleError(
            f"{directory}: model bundle folder does not exist (expected a RUN_DIR from 'iomt-ids train')."
        )
    if not meta_path.exists():
        raise BundleError(f"{directory}: no {_META} here; is this a RUN_DIR written by 'iomt-ids train'?")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: expected a JSON object; got {type(meta).__name__}.")
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{meta_path}: format {meta.get('format')!r} is not {BUNDLE_FORMAT!r}.")
    for key in ("model_name", "estimator", "task", "classes", "release", "input_columns", "preprocessing"):
        if key not in meta:
            raise BundleError(f"{meta_path}: field {key!r} is missing.")
    release = meta["release"]
    expected = list(columns_for(release))
    if meta["input_columns"] != expected:
        raise SchemaError(
            f"{meta_path}: input columns do not match the {release} schema; expected {expected}, "
            f"got {meta['input_columns']}."
        )
    pre = Preprocessor.from_dict(meta["preprocessing"])
    if list(pre.input_columns) != expected:
        raise SchemaError(f"{meta_path}: preprocessing input columns do not match the {release} schema.")
    if not isinstance(meta["estimator"], dict):
        raise BundleError(f"{meta_path}: field 'estimator' must be an object; got {meta['estimator']!r}.")
    for key in WEIGHT_FIELDS:
        if key in meta["estimator"]:
            bundle_member(directory, meta["estimator"][key], f"estimator.{key}")
    if "train_rows" in meta:
        record = meta["train_rows"]
        bundle_member(
            directory, record.get("file") if isinstance(record, dict) else record, "train_rows.file"
        )
    kind = meta["estimator"].get("kind")
    if kind not in ESTIMATORS:
        _import_estimator_plugins()
    if kind not in ESTIMATORS:
        raise BundleError(f"{meta_path}: estimator kind {kind!r} is not one of {sorted(ESTIMATORS)}.")
    estimator = ESTIMATORS[kind](directory, meta, pre.n_features_out, len(meta["classes"]))
    return ModelBundle(
        estimator=estimator,
        preprocessor=pre,
        classes=tuple(meta["classes"]),
        task=int(meta["task"]),
        release=release,
        meta=meta,
        source=directory,
    )


def _import_estimator_plugins() -> None:
    """Import the modules of the registered models, so that each registers its estimator loader."""
    import importlib

    from iomt_ids.models.registry import MODELS

    for module in dict.fromkeys(e.target.partition(":")[0] for e in MODELS.values()):
        importlib.import_module(module)
