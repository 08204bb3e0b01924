"""Model registry: one name per architecture, mapped to its class and default arguments.

>>> sorted(MODELS)
['dnn', 'gru', 'gru_dnn', 'lstm', 'lstm_dnn']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from iomt_ids.exceptions import ConfigError
from iomt_ids.models.dnn import DNN, DenseHead
from iomt_ids.models.recurrent import HybridRNN, RecurrentClassifier

__all__ = [
    "DEEP_MODELS",
    "DNN",
    "MODELS",
    "DenseHead",
    "HybridRNN",
    "ModelSpec",
    "RecurrentClassifier",
    "build_model",
]


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its class and the fixed arguments that select the variant."""

    cls: type[nn.Module]
    fixed: dict[str, Any] = field(default_factory=dict)
    description: str = ""


MODELS: dict[str, ModelSpec] = {
    "dnn": ModelSpec(DNN, {}, "Dense 64 -> Dropout 0.3 -> Dense 32 -> Dropout 0.3 -> softmax (seed 001)"),
    "lstm": ModelSpec(
        RecurrentClassifier, {"cell": "lstm"}, "LSTM 128 -> LSTM 64 -> softmax (L2D2-style baseline)"
    ),
    "gru": ModelSpec(RecurrentClassifier, {"cell": "gru"}, "GRU 128 -> GRU 64 -> softmax (baseline)"),
    "lstm_dnn": ModelSpec(
        HybridRNN,
        {"cell": "lstm"},
        "LSTM 128 -> LSTM 64 -> BatchNorm -> Dropout -> Dense 64/32 ReLU (seed 000)",
    ),
    "gru_dnn": ModelSpec(
        HybridRNN, {"cell": "gru"}, "GRU 128 -> GRU 64 -> BatchNorm -> Dropout -> Dense 64/32 ReLU (seed 001)"
    ),
}

#: Names of the PyTorch models, in the order reports list them.
DEEP_MODELS: tuple[str, ...] = ("dnn", "lstm", "gru", "lstm_dnn", "gru_dnn")


def build_model(name: str, n_features: int, n_classes: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; ``kwargs`` override its default sizes.

    Raises ConfigError for an unknown name or argument.
    """
    if name not in MODELS:
        raise ConfigError(f"model must be one of {sorted(MODELS)}; got {name!r} instead.")
    spec = MODELS[name]
    try:
        return spec.cls(n_features=n_features, n_classes=n_classes, **spec.fixed, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: invalid arguments {sorted(kwargs)}: {exc}") from None
