"""Training a PyTorch model: presets, the trainer with its callbacks, and the history.

This layer knows nothing of datasets, bundles or model names: it fits a module on
arrays. The end-to-end job (data -> preprocessing -> model -> bundle -> report) is
:func:`iomt_ids.workflows.train_run`.
"""

from __future__ import annotations

from iomt_ids.training.callbacks import Callback, EarlyStopping, Progress, default_callbacks
from iomt_ids.training.config import PRESETS, TrainConfig, get_preset
from iomt_ids.training.history import History
from iomt_ids.training.trainer import Trainer

__all__ = [
    "PRESETS",
    "Callback",
    "EarlyStopping",
    "History",
    "Progress",
    "TrainConfig",
    "Trainer",
    "default_callbacks",
    "get_preset",
]
