"""Training callbacks: hooks the :class:`~iomt_ids.training.trainer.Trainer` calls at fixed points.

In the style of skorch's ``notify``: the trainer calls, on every callback in order,

* ``on_train_begin(trainer)`` once, before the first epoch;
* ``on_epoch_begin(trainer, epoch, rows)`` before each epoch (``rows`` training rows);
* ``on_batch_end(trainer, rows)`` after each optimiser step (``rows`` in that batch);
* ``on_epoch_end(trainer, record)`` after each epoch, with the epoch's record (already in
  the history);
* ``on_train_end(trainer, history)`` once, after the last epoch.

:class:`Callback` defines them all as no-ops; subclass it and override what you need.
A callback ends training by setting the stop flag, ``trainer.stop_training = True``; the
trainer checks the flag after every callback's ``on_epoch_end`` and then stops, with
``history.stopped_early = True``.

The default callbacks (:func:`default_callbacks`) are :class:`EarlyStopping` on the
validation loss, configured from the :class:`~iomt_ids.training.config.TrainConfig`,
and :class:`Progress` (a tqdm bar on a terminal, one log line per epoch).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Protocol

from torch import nn

from iomt_ids.exceptions import ConfigError
from iomt_ids.runtime import stderr_is_terminal
from iomt_ids.training.config import TrainConfig
from iomt_ids.training.history import History

__all__ = ["EPOCH_LOGGER", "Callback", "EarlyStopping", "Progress", "TrainerLike", "default_callbacks"]

#: Logger of the per-epoch progress line (the trainer's module, where it has always been logged).
EPOCH_LOGGER = "iomt_ids.training.trainer"


class TrainerLike(Protocol):
    """What a callback may use of the trainer that calls it."""

    model: nn.Module
    config: TrainConfig
    stop_training: bool


class Callback:
    """Base class of training callbacks: every hook does nothing.

    Examples
    --------
    >>> class StopAt(Callback):
    ...     def __init__(self, accuracy: float) -> None:
    ...         self.accuracy = accuracy
    ...
    ...     def on_epoch_end(self, trainer, record):
    ...         if record["val_accuracy"] >= self.accuracy:
    ...             trainer.stop_training = True
    """

    def on_train_begin(self, trainer: TrainerLike) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, rows: int) -> None:
        """Called before epoch ``epoch`` (1-based) over ``rows`` training rows."""

    def on_batch_end(self, trainer: TrainerLike, rows: int) -> None:
        """Called after each optimiser step on a batch of ``rows`` rows."""

    def on_epoch_end(self, trainer: TrainerLike, record: dict[str, Any]) -> None:
        """Called after each epoch with its record (``epoch``, ``loss``, ``val_loss`` ...)."""

    def on_train_end(self, trainer: TrainerLike, history: History) -> None:
        """Called once after the last epoch (also after a requested stop)."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``threshold`` for ``patience`` epochs.

    Used as a callback it resets itself when training begins, sets the trainer's stop
    flag, and when training ends records the best epoch in the history and (``load_best``)
    loads the best weights back into the model. :meth:`step` also works on its own.

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
        self.reset()

    @classmethod
    def from_config(cls, config: TrainConfig) -> EarlyStopping:
        """Early stopping on the validation loss with the patience, ``min_delta`` and ``restore_best`` of ``config``."""
        return cls("val_loss", config.patience, config.min_delta, True, config.restore_best)

    def reset(self) -> None:
        """Forget the scores seen so far (done when training begins)."""
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
        """Update with one epoch's record; return True when training should stop.

        Raises
        ------
        ConfigError
            The record has no ``monitor`` key.
        """
        if self.monitor not in record:
            raise ConfigError(
                f"EarlyStopping.monitor must be a key of the epoch record {sorted(record)}; "
                f"got {self.monitor!r} instead."
            )
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

    # -- callback hooks ----------------------------------------------------------------
    def on_train_begin(self, trainer: TrainerLike) -> None:
        self.reset()

    def on_epoch_end(self, trainer: TrainerLike, record: dict[str, Any]) -> None:
        if self.step(record, trainer.model):
            trainer.stop_training = True

    def on_train_end(self, trainer: TrainerLike, history: History) -> None:
        history.best_epoch = self.best_epoch
        if self.load_best:
            self.restore(trainer.model)


class Progress(Callback):
    """Progress of training: a tqdm bar per epoch on a terminal, and one log line per epoch.

    The bar (rows/s and ETA) appears only when ``bar`` is True and stderr is a terminal:
    redirected to a file or a pipe, a bar would write hundreds of carriage-return frames
    per epoch, so there the per-epoch log line (INFO, logger :data:`EPOCH_LOGGER`) is the
    only progress report.

    Parameters
    ----------
    bar : bool, default True
        Show the bar (on a terminal). The log line is written either way.
    """

    def __init__(self, bar: bool = True) -> None:
        self.bar = bar
        self.logger = logging.getLogger(EPOCH_LOGGER)
        self._bar: Any = None

    def on_epoch_begin(self, trainer: TrainerLike, epoch: int, rows: int) -> None:
        self._bar = None
        if not self.bar or not stderr_is_terminal():
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=rows,
            desc=f"epoch {epoch}/{trainer.config.max_epochs}",
            unit="row",
            unit_scale=True,
            leave=False,
            mininterval=0.5,
        )

    def on_batch_end(self, trainer: TrainerLike, rows: int) -> None:
        if self._bar is not None:
            self._bar.update(rows)

    def on_epoch_end(self, trainer: TrainerLike, record: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                val_loss=f"{record['val_loss']:.4f}",
                val_acc=f"{record['val_accuracy']:.4f}",
            )
            self._bar.close()
            self._bar = None
        self.logger.info(
            "epoch %d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1fs, %.0f rows/s)",
            record["epoch"], record["loss"], record["accuracy"], record["val_loss"], record["val_accuracy"],
            record["seconds"], record["train_rows_per_s"],
        )  # fmt: skip


def default_callbacks(config: TrainConfig, progress: bool = True) -> list[Callback]:
    """The callbacks a :class:`~iomt_ids.training.trainer.Trainer` uses when given none.

    Parameters
    ----------
    config : TrainConfig
        Gives early stopping its patience, ``min_delta`` and ``restore_best``.
    progress : bool, default True
        Show the per-epoch bar on a terminal (the per-epoch log line is kept either way).

    Returns
    -------
    list of Callback
        ``[EarlyStopping.from_config(config), Progress(bar=progress)]``.
    """
    return [EarlyStopping.from_config(config), Progress(bar=progress)]
