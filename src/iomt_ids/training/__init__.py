"""Training: presets, the trainer, early stopping, history and the end-to-end pipeline."""

from __future__ import annotations

from iomt_ids.training.callbacks import EarlyStopping
from iomt_ids.training.config import PRESETS, TrainConfig, get_preset
from iomt_ids.training.history import History
from iomt_ids.training.pipeline import RunConfig, fit_bundle, prepare_splits, train_run
from iomt_ids.training.trainer import Trainer

__all__ = [
    "PRESETS",
    "EarlyStopping",
    "History",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "fit_bundle",
    "get_preset",
    "prepare_splits",
    "train_run",
]
