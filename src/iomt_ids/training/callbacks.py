"""Early stopping that returns a stop flag (rather than raising to stop the loop)."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``threshold`` for ``patience`` epochs.

    Parameters
    ----------
    monitor: key of the epoch record to watch (e.g. "val_loss").
    patience: epochs without improvement tolerated.
    threshold: minimum change that counts as an improvement.
    lower_is_better: True for losses.
    load_best: keep a copy of the best weights; :meth:`restore` loads them.

    Examples
    --------
    >>> es = EarlyStopping(patience=1)
    >>> [es.step({"val_loss": v}) for v in (1.0, 0.5, 0.6, 0.7)]
    [False, False, True, True]
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        threshold: float = 0.0,
        lower_is_better: bool = True,
        load_best: bool = True,
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.threshold = threshold
        self.lower_is_better = lower_is_better
        self.load_best = load_best
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self._best_state: dict[str, Any] | None = None

    def _improved(self, score: float) -> bool:
        if self.best_score is None:
            return True
        if self.lower_is_better:
            return score < self.best_score - self.threshold
        return score > self.best_score + self.threshold

    def step(self, record: dict[str, Any], model: nn.Module | None = None) -> bool:
        """Update with one epoch's record; return True when training should stop."""
        score = float(record[self.monitor])
        if self._improved(score):
            self.best_score = score
            self.best_epoch = int(record.get("epoch", 0))
            self.wait = 0
            if self.load_best and model is not None:
                self._best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        return self.wait > self.patience - 1 if self.patience > 0 else True

    def restore(self, model: nn.Module) -> bool:
        """Load the best weights into ``model``; return whether there were any."""
        if self._best_state is None:
            return False
        model.load_state_dict(self._best_state)
        return True
