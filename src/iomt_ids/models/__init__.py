"""Models: the registry of every model name, the PyTorch architectures and the tree models.

:mod:`~iomt_ids.models.registry` is the one table of names (with their kind);
:mod:`~iomt_ids.models.base` the estimator protocol that bundles store and load.

>>> sorted(MODELS)
['dnn', 'ensemble', 'gru', 'gru_dnn', 'lightgbm', 'lstm', 'lstm_dnn', 'random_forest']
"""

from __future__ import annotations

from iomt_ids.models.registry import (
    DEEP_MODELS,
    MODELS,
    TREE_MODELS,
    ModelEntry,
    build_model,
    check_model_name,
    model_names,
)

__all__ = [
    "DEEP_MODELS",
    "MODELS",
    "TREE_MODELS",
    "ModelEntry",
    "build_model",
    "check_model_name",
    "model_names",
]
