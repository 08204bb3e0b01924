"""Model bundles: one directory that holds everything needed to score rows.

Layout of a bundle directory::

    bundle.json          format, model name/kind/arguments, task, classes, release,
                         input columns, preprocessing state, training config,
                         data summary, metrics summary, package versions, version id
    model.safetensors    weights of a PyTorch model (no pickle)
    (other estimator kinds store their own non-pickle files, e.g. LightGBM text)

:func:`load_bundle` checks the format and that the preprocessing state matches the
declared release schema; :meth:`ModelBundle.predict_proba` refuses input whose
columns do not match, naming the missing and unexpected ones.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from iomt_ids.data.preprocess import INF_ALLOWED, NAN_ALLOWED, Preprocessor
from iomt_ids.exceptions import BundleError, SchemaError
from iomt_ids.features.schema import columns_for

__all__ = [
    "BUNDLE_FORMAT",
    "ESTIMATORS",
    "Estimator",
    "ModelBundle",
    "TorchEstimator",
    "load_bundle",
    "package_versions",
    "register_estimator",
]

BUNDLE_FORMAT = "iomt-ids-bundle/1"
_META = "bundle.json"


class Estimator(Protocol):
    """What a bundle needs from a fitted model: probabilities, and non-pickle persistence."""

    kind: str
    name: str

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> dict[str, Any]: ...


#: estimator kind -> loader(directory, meta, n_features, n_classes)
ESTIMATORS: dict[str, Callable[[Path, dict[str, Any], int, int], Estimator]] = {}


def register_estimator(kind: str) -> Callable[[Callable[..., Estimator]], Callable[..., Estimator]]:
    """Decorator: register the loader of an estimator kind."""

    def deco(fn: Callable[..., Estimator]) -> Callable[..., Estimator]:
        ESTIMATORS[kind] = fn
        return fn

    return deco


class TorchEstimator:
    """A registered PyTorch model with the arguments that rebuild it."""

    kind = "torch"

    def __init__(self, name: str, module: Any, model_kwargs: dict[str, Any] | None = None) -> None:
        self.name = name
        self.module = module
        self.model_kwargs = dict(model_kwargs or {})

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from iomt_ids.training.trainer import predict_proba

        device = next(self.module.parameters()).device
        if getattr(self.module, "sequence_input", False):
            x = x.reshape(x.shape[0], 1, x.shape[1])
        return predict_proba(self.module, x, device)

    def save(self, directory: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))
        return {"weights": "model.safetensors", "model_kwargs": self.model_kwargs}


@register_estimator("torch")
def _load_torch(directory: Path, meta: dict[str, Any], n_features: int, n_classes: int) -> TorchEstimator:
    from safetensors.torch import load_file

    from iomt_ids.models import build_model

    est_meta = meta["estimator"]
    module = build_model(meta["model_name"], n_features, n_classes, **est_meta.get("model_kwargs", {}))
    path = directory / est_meta.get("weights", "model.safetensors")
    if not path.exists():
        raise BundleError(f"{directory}: weights file {path.name} is missing.")
    try:
        state = load_file(str(path))
        module.load_state_dict(state)
    except Exception as exc:  # corrupt file or shape mismatch
        raise BundleError(f"{path}: weights do not fit model {meta['model_name']!r}: {exc}") from None
    module.eval()
    return TorchEstimator(meta["model_name"], module, est_meta.get("model_kwargs", {}))


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


def _file_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.iterdir()):
        if (
            p.is_file()
            and p.name != _META
            and p.suffix in {".safetensors", ".txt", ".json", ".npz", ".onnx"}
        ):
            h.update(p.name.encode())
            h.update(p.read_bytes())
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
    """

    estimator: Estimator
    preprocessor: Preprocessor
    classes: tuple[str, ...]
    task: int
    release: str
    meta: dict[str, Any] = field(default_factory=dict)

    # -- identity --------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.estimator.name

    @property
    def version(self) -> str:
        """A stable id of these weights: ``<model>-<task>c-<digest>`` (set when saved)."""
        return str(self.meta.get("version", f"{self.model_name}-{self.task}c-unsaved"))

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
        """Write the bundle into ``directory`` (created if needed); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        est_meta = self.estimator.save(directory)
        meta = dict(self.meta)
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
        meta["version"] = f"{self.model_name}-{self.task}c-{_file_digest(directory)[:12]}"
        self.meta = meta
        (directory / _META).write_text(json.dumps(meta, indent=2, default=_json_default))
        return directory


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_bundle(directory: str | Path) -> ModelBundle:
    """Load a bundle written by :meth:`ModelBundle.save`; no pickle is involved.

    Raises BundleError when the directory, bundle.json or the weights are missing or
    do not fit, and SchemaError when the stored schema is not the declared release's.
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
    )


def _import_estimator_plugins() -> None:
    """Import modules that register further estimator kinds (tree models)."""
    import importlib

    for mod in ("iomt_ids.models.trees",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            pass
