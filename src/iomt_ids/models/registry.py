"""The model registry: every model name the pipeline, the CLI and bundles accept, with its kind.

One table for all models. ``kind`` says how a model is fitted and stored:

* ``"torch"``: a PyTorch module (class in :mod:`iomt_ids.models.dnn` or
  :mod:`iomt_ids.models.recurrent`), trained by :class:`iomt_ids.training.Trainer` and
  saved as safetensors;
* ``"tree"``: a gradient-boosted or bagged tree model (:mod:`iomt_ids.models.trees`);
* ``"ensemble"``: a soft vote of registered models (:mod:`iomt_ids.models.ensemble`).

Looking a name up imports nothing heavy: classes are resolved on first use, so that
argument checks in the CLI stay fast.

>>> [name for name in MODELS if MODELS[name].kind == "torch"]
['dnn', 'lstm', 'gru', 'lstm_dnn', 'gru_dnn']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from iomt_ids.exceptions import ConfigError

__all__ = [
    "DEEP_MODELS",
    "MODELS",
    "TREE_MODELS",
    "ModelEntry",
    "build_model",
    "check_model_name",
    "model_names",
]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes
    ----------
    name : str
        The name used on the command line and in bundle.json.
    kind : {"torch", "tree", "ensemble"}
        How it is fitted and stored.
    description : str
        One line for ``--help`` and reports.
    target : str
        ``"module:Class"`` of the PyTorch module (torch kind) or of the estimator.
    fixed : dict
        Fixed constructor arguments that select the variant (e.g. ``cell="gru"``).
    """

    name: str
    kind: str
    description: str
    target: str
    fixed: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> type:
        """The class named by :attr:`target` (imports its module)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def cls(self) -> type:
        return self.resolve()


_D = "iomt_ids.models.dnn"
_R = "iomt_ids.models.recurrent"

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "dnn",
            "torch",
            "Dense 64 -> Dropout 0.3 -> Dense 32 -> Dropout 0.3 -> softmax (seed 001)",
            f"{_D}:DNN",
        ),
        ModelEntry(
            "lstm",
            "torch",
            "LSTM 128 -> LSTM 64 -> softmax (L2D2-style baseline)",
            f"{_R}:RecurrentClassifier",
            {"cell": "lstm"},
        ),
        ModelEntry(
            "gru",
            "torch",
            "GRU 128 -> GRU 64 -> softmax (baseline)",
            f"{_R}:RecurrentClassifier",
            {"cell": "gru"},
        ),
        ModelEntry(
            "lstm_dnn",
            "torch",
            "LSTM 128 -> LSTM 64 -> BatchNorm -> Dropout -> Dense 64/32 ReLU (seed 000)",
            f"{_R}:HybridRNN",
            {"cell": "lstm"},
        ),
        ModelEntry(
            "gru_dnn",
            "torch",
            "GRU 128 -> GRU 64 -> BatchNorm -> Dropout -> Dense 64/32 ReLU (seed 001)",
            f"{_R}:HybridRNN",
            {"cell": "gru"},
        ),
        ModelEntry(
            "lightgbm",
            "tree",
            "LightGBM gradient-boosted trees (early stopping on validation log-loss)",
            "iomt_ids.models.trees:LightGBMEstimator",
        ),
        ModelEntry(
            "random_forest",
            "tree",
            "scikit-learn random forest, stored as plain arrays",
            "iomt_ids.models.trees:ForestEstimator",
        ),
        ModelEntry(
            "ensemble",
            "ensemble",
            "soft vote of a tuned deep model (gru_dnn by default) and LightGBM, weight chosen on validation",
            "iomt_ids.models.ensemble:EnsembleEstimator",
        ),
    )
}


def model_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered names, in registry order; only those of ``kind`` when given."""
    return tuple(n for n, e in MODELS.items() if kind is None or e.kind == kind)


#: Names of the PyTorch models, in the order reports list them.
DEEP_MODELS: tuple[str, ...] = model_names("torch")
#: Names of the tree models.
TREE_MODELS: tuple[str, ...] = model_names("tree")


def check_model_name(name: str, kind: str | None = None) -> ModelEntry:
    """The entry of ``name``; ConfigError naming the accepted names otherwise."""
    entry = MODELS.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        raise ConfigError(f"model must be one of {list(model_names(kind))}; got {name!r} instead.")
    return entry


def build_model(name: str, n_features: int, n_classes: int, **kwargs: Any) -> Any:
    """Instantiate a registered PyTorch model; ``kwargs`` override its default sizes.

    Raises ConfigError for an unknown name, a model that is not a PyTorch model, or a
    bad argument.
    """
    entry = check_model_name(name, "torch")
    try:
        return entry.resolve()(n_features=n_features, n_classes=n_classes, **entry.fixed, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: invalid arguments {sorted(kwargs)}: {exc}") from None
