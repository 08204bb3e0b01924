"""The estimator protocol that bundles store and load, and its PyTorch implementation.

An *estimator* is a fitted model that gives class probabilities and saves itself
without pickle. :data:`ESTIMATORS` maps the estimator kind written in bundle.json
(``"torch"``, ``"lightgbm"``, ``"forest"``, ...) to the function that loads it back;
each model module registers its own loader with :func:`register_estimator`.

bundle.json is untrusted input, so this module also holds the checks a loader runs
before it reads or builds anything: :func:`bundle_member` (file names stay inside the
bundle folder) and :func:`check_model_kwargs` (model arguments within
:data:`MODEL_KWARG_LIMITS`, and no more parameters than the weights file holds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Protocol

import numpy as np

from iomt_ids.exceptions import BundleError

__all__ = [
    "BUNDLE_META",
    "ESTIMATORS",
    "MODEL_KWARG_LIMITS",
    "WEIGHT_FIELDS",
    "Estimator",
    "TorchEstimator",
    "bundle_member",
    "check_model_kwargs",
    "json_default",
    "register_estimator",
    "sha256_file",
    "weight_files",
]

#: The metadata file of a bundle folder.
BUNDLE_META = "bundle.json"

#: Fields of the dict ``Estimator.save`` returns that name the files it wrote (the weights).
WEIGHT_FIELDS: tuple[str, ...] = ("weights", "model_file")

#: Bounds on the PyTorch model arguments a bundle may ask for: layer widths, layer counts, dropout.
MODEL_KWARG_LIMITS: dict[str, Any] = {
    "units": (1, 8192),  # width of every dense or recurrent layer
    "dense_layers": (0, 16),  # 0: a linear output on the recurrent features
    "rnn_layers": (1, 16),
    "dropout": (0.0, 1.0),  # [low, high)
}


class Estimator(Protocol):
    """What a bundle needs from a fitted model: probabilities, and non-pickle persistence.

    ``save`` writes the model into a folder and returns the fields bundle.json keeps
    under ``estimator``; the files it wrote are named under one of
    :data:`WEIGHT_FIELDS` (their bytes make the bundle's version id).
    """

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

    from iomt_ids.models.registry import build_model

    est_meta = meta["estimator"]
    path = bundle_member(directory, est_meta.get("weights", "model.safetensors"), "estimator.weights")
    if not path.exists():
        raise BundleError(f"{directory}: weights file {path.name} is missing.")
    kwargs = check_model_kwargs(directory / BUNDLE_META, meta["model_name"], est_meta.get("model_kwargs", {}))
    _check_model_size(directory / BUNDLE_META, meta["model_name"], n_features, n_classes, kwargs, path)
    module = build_model(meta["model_name"], n_features, n_classes, **kwargs)
    try:
        state = load_file(str(path))
        module.load_state_dict(state)
    except Exception as exc:  # corrupt file or shape mismatch
        raise BundleError(f"{path}: weights do not fit model {meta['model_name']!r}: {exc}") from None
    module.eval()
    return TorchEstimator(meta["model_name"], module, kwargs)


def bundle_member(directory: Path, name: Any, field: str) -> Path:
    """The path of the file ``name`` (from bundle.json's ``field``) inside the bundle ``directory``.

    bundle.json is untrusted input: a name that is not a plain relative path, or
    that leads out of the folder (``..``, an absolute path, a drive, a symbolic
    link pointing elsewhere), raises BundleError naming bundle.json, the field and
    the value.
    """
    where = f"{Path(directory) / BUNDLE_META}: field {field!r}"
    if not isinstance(name, str) or not name.strip():
        raise BundleError(f"{where} must be a file name inside the bundle folder; got {name!r}.")
    if "\x00" in name:
        raise BundleError(f"{where} = {name!r} contains a NUL character.")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise BundleError(
            f"{where} = {name!r} is an absolute path; expected a file name inside the bundle folder."
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise BundleError(f"{where} = {name!r} contains '..'; expected a file name inside the bundle folder.")
    root = Path(directory).resolve()
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise BundleError(f"{where} = {name!r} resolves to {path}, outside the bundle folder {root}.")
    return Path(directory) / name


def _check_units(where: str, key: str, value: Any, layers: tuple[int, int]) -> list[int]:
    lo, hi = MODEL_KWARG_LIMITS["units"]
    if not isinstance(value, list | tuple) or not all(
        isinstance(u, int) and not isinstance(u, bool) for u in value
    ):
        raise BundleError(f"{where} {key!r} must be a list of integers; got {value!r}.")
    if not layers[0] <= len(value) <= layers[1]:
        raise BundleError(f"{where} {key!r} = {list(value)} must list {layers[0]} to {layers[1]} layers.")
    bad = [u for u in value if not lo <= u <= hi]
    if bad:
        raise BundleError(f"{where} {key!r} = {list(value)}: layer widths must be in {lo}..{hi}; got {bad}.")
    return [int(u) for u in value]


def check_model_kwargs(source: str | Path, model_name: str, kwargs: Any) -> dict[str, Any]:
    """Validate the model arguments stored in a bundle before anything is built from them.

    Allowed: ``dense_units`` and ``rnn_units`` (lists of layer widths), ``dropout`` and
    ``batch_norm``, where the model takes them, within :data:`MODEL_KWARG_LIMITS`.
    Raises BundleError naming ``source`` (bundle.json), the field and the value.
    """
    from iomt_ids.models.registry import MODELS

    where = f"{source}: field 'estimator.model_kwargs'"
    deep = [n for n, e in MODELS.items() if e.kind == "torch"]
    if model_name not in deep:
        raise BundleError(f"{source}: field 'model_name' = {model_name!r} is not one of {deep}.")
    if not isinstance(kwargs, dict):
        raise BundleError(f"{where} must be an object; got {kwargs!r}.")
    import inspect

    spec = MODELS[model_name]
    accepted = set(inspect.signature(spec.resolve().__init__).parameters) - {
        "self",
        "n_features",
        "n_classes",
    }
    accepted -= set(spec.fixed)
    unknown = sorted(set(kwargs) - (accepted & {"dense_units", "rnn_units", "dropout", "batch_norm"}))
    if unknown:
        raise BundleError(
            f"{where}: {unknown} are not arguments of model {model_name!r} that a bundle may set."
        )
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "dense_units":
            out[key] = _check_units(where, key, value, MODEL_KWARG_LIMITS["dense_layers"])
        elif key == "rnn_units":
            out[key] = _check_units(where, key, value, MODEL_KWARG_LIMITS["rnn_layers"])
        elif key == "dropout":
            lo, hi = MODEL_KWARG_LIMITS["dropout"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value < hi:
                raise BundleError(f"{where} 'dropout' = {value!r} must be a number in [{lo}, {hi}).")
            out[key] = float(value)
        else:  # batch_norm
            if not isinstance(value, bool):
                raise BundleError(f"{where} 'batch_norm' = {value!r} must be true or false.")
            out[key] = value
    return out


def _check_model_size(
    source: Path, model_name: str, n_features: int, n_classes: int, kwargs: dict[str, Any], weights: Path
) -> None:
    """Refuse model arguments that describe more parameters than the weights file can hold.

    The model is built on PyTorch's ``meta`` device first (no memory is allocated), so
    a bundle.json cannot make loading allocate more than its weights file justifies.
    """
    import torch

    from iomt_ids.models.registry import build_model

    with torch.device("meta"):
        module = build_model(model_name, n_features, n_classes, **kwargs)
    need = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    have = weights.stat().st_size
    if need > have:
        raise BundleError(
            f"{source}: field 'estimator.model_kwargs' = {kwargs} describes a model of {need} bytes of "
            f"parameters, more than the {have} bytes of {weights.name}."
        )


def weight_files(est_meta: dict[str, Any]) -> list[str]:
    """Names of the files an estimator wrote, from what its ``save`` returned (:data:`WEIGHT_FIELDS`)."""
    return [str(est_meta[k]) for k in WEIGHT_FIELDS if isinstance(est_meta.get(k), str)]


def json_default(o: Any) -> Any:
    """``json.dumps`` ``default=``: NumPy numbers and arrays, paths; TypeError otherwise (as json requires)."""
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
