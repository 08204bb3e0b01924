"""Trainer(callbacks=[...]): the hooks, the stop flag, and the defaults (early stopping + progress)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch

from iomt_ids.models import build_model
from iomt_ids.training import EarlyStopping, History, TrainConfig, Trainer
from iomt_ids.training import callbacks as cb_mod
from iomt_ids.training.callbacks import Callback, Progress, default_callbacks

EPOCH_LINE = "epoch %d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1fs, %.0f rows/s)"


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 6)).astype(np.float32) + y[:, None] * 2.0
    cut = n * 4 // 5
    return x[:cut], y[:cut], x[cut:], y[cut:]


class Recorder(Callback):
    """Writes down every hook call; asks to stop after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.calls: list[tuple[Any, ...]] = []
        self.records: list[dict[str, Any]] = []
        self.rows_per_epoch: list[int] = []

    def on_train_begin(self, trainer: Any) -> None:
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, trainer: Any, epoch: int, rows: int) -> None:
        self.calls.append(("epoch_begin", epoch, rows))
        self.rows_per_epoch.append(0)

    def on_batch_end(self, trainer: Any, rows: int) -> None:
        self.rows_per_epoch[-1] += rows

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        self.calls.append(("epoch_end", record["epoch"]))
        self.records.append(record)
        if self.stop_after is not None and record["epoch"] >= self.stop_after:
            trainer.stop_training = True

    def on_train_end(self, trainer: Any, history: History) -> None:
        self.calls.append(("train_end", len(history)))


def test_a_custom_callback_sees_every_epoch_record() -> None:
    x, y, xv, yv = _data()
    rec = Recorder()
    cfg = TrainConfig(lr=1e-2, batch_size=32, max_epochs=4, patience=10)
    hist = Trainer(build_model("dnn", 6, 3), cfg, device="cpu", callbacks=[rec]).fit(x, y, xv, yv)
    assert len(hist) == 4 and not hist.stopped_early
    assert rec.records == list(hist) and all(a is b for a, b in zip(rec.records, hist, strict=True))
    assert rec.calls == [
        ("train_begin",),
        *[c for e in range(1, 5) for c in (("epoch_begin", e, len(x)), ("epoch_end", e))],
        ("train_end", 4),
    ]
    assert rec.rows_per_epoch == [len(x)] * 4  # on_batch_end: every row of every batch


def test_a_custom_callback_can_stop_training_early() -> None:
    x, y, xv, yv = _data()
    rec = Recorder(stop_after=2)
    cfg = TrainConfig(lr=1e-2, batch_size=32, max_epochs=20, patience=10)
    trainer = Trainer(build_model("dnn", 6, 3), cfg, device="cpu", callbacks=[*default_callbacks(cfg), rec])
    hist = trainer.fit(x, y, xv, yv)
    assert [r["epoch"] for r in hist] == [1, 2]
    assert hist.stopped_early and trainer.stop_training
    assert rec.calls[-1] == ("train_end", 2)
    assert hist.best_epoch in (1, 2)  # the default early stopping still records the best epoch
    # the flag is reset by the next fit: the same trainer trains again, and stops again at 2
    assert len(trainer.fit(x, y, xv, yv)) == 2


def test_the_default_callbacks_are_early_stopping_and_progress() -> None:
    cfg = TrainConfig(patience=7, min_delta=0.01, restore_best=False)
    trainer = Trainer(build_model("dnn", 6, 3), cfg, device="cpu")
    assert [type(c) for c in trainer.callbacks] == [EarlyStopping, Progress]
    assert [type(c) for c in default_callbacks(cfg)] == [EarlyStopping, Progress]
    es, progress = trainer.callbacks
    assert (es.monitor, es.patience, es.threshold, es.lower_is_better, es.load_best) == (
        "val_loss", 7, 0.01, True, False,
    )  # fmt: skip
    assert progress.bar is True
    quiet = Trainer(build_model("dnn", 6, 3), cfg, device="cpu", progress=False)
    assert [type(c) for c in quiet.callbacks] == [EarlyStopping, Progress] and quiet.callbacks[1].bar is False


def test_explicit_defaults_train_exactly_as_no_callbacks_argument() -> None:
    x, y, xv, _ = _data()
    noise = np.random.default_rng(1).integers(0, 3, len(xv))  # validation loss rises: early stopping stops
    cfg = TrainConfig(lr=3e-2, batch_size=32, max_epochs=8, patience=1)
    runs = []
    for callbacks in (None, [EarlyStopping.from_config(cfg), Progress()]):
        torch.manual_seed(0)
        model = build_model("dnn", 6, 3)
        hist = Trainer(model, cfg, device="cpu", callbacks=callbacks).fit(x, y, xv, noise)
        runs.append((hist, model.state_dict()))
    (h1, w1), (h2, w2) = runs
    drop = ("seconds", "train_rows_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in h1] == [
        {k: v for k, v in r.items() if k not in drop} for r in h2
    ]
    assert (h1.best_epoch, h1.stopped_early) == (h2.best_epoch, h2.stopped_early)
    assert h1.stopped_early and len(h1) < 8
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=0, atol=0)


class FakeBar:
    made: list[FakeBar] = []

    def __init__(self, total: int, **kw: Any) -> None:
        self.total, self.kw, self.rows, self.closed, self.postfix = total, kw, 0, False, {}
        FakeBar.made.append(self)

    def update(self, n: int) -> None:
        self.rows += n

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = kw

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> type[FakeBar]:
    """stderr looks like a terminal, and tqdm bars are recorded instead of drawn."""
    import tqdm.auto

    FakeBar.made = []
    monkeypatch.setattr(cb_mod, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    return FakeBar


def _epoch_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "iomt_ids.training.trainer" and r.msg == EPOCH_LINE]


def test_default_progress_draws_a_bar_per_epoch_and_logs_a_line(
    terminal: type[FakeBar], caplog: pytest.LogCaptureFixture
) -> None:
    x, y, xv, yv = _data()
    cfg = TrainConfig(lr=1e-2, batch_size=32, max_epochs=3, patience=10)
    with caplog.at_level(logging.INFO, logger="iomt_ids.training.trainer"):
        hist = Trainer(build_model("dnn", 6, 3), cfg, device="cpu").fit(x, y, xv, yv)
    assert len(terminal.made) == len(hist) == 3
    for epoch, bar in enumerate(terminal.made, 1):
        assert bar.total == bar.rows == len(x) and bar.closed
        assert bar.kw["desc"] == f"epoch {epoch}/3" and bar.kw["leave"] is False
        assert set(bar.postfix) == {"loss", "val_loss", "val_acc"}
    assert len(_epoch_lines(caplog)) == 3


def test_callbacks_empty_list_disables_progress_output(
    terminal: type[FakeBar], caplog: pytest.LogCaptureFixture
) -> None:
    x, y, xv, yv = _data()
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 3, len(xv))  # validation loss rises: early stopping would stop
    cfg = TrainConfig(lr=3e-2, batch_size=32, max_epochs=6, patience=1)
    with caplog.at_level(logging.DEBUG):
        hist = Trainer(build_model("dnn", 6, 3), cfg, device="cpu", callbacks=[]).fit(x, y, xv, noise)
    assert terminal.made == []  # no bar
    assert _epoch_lines(caplog) == []  # no log line
    assert len(hist) == 6 and not hist.stopped_early and hist.best_epoch is None  # and no early stopping


def test_progress_false_keeps_the_log_line_but_draws_no_bar(
    terminal: type[FakeBar], caplog: pytest.LogCaptureFixture
) -> None:
    x, y, xv, yv = _data()
    cfg = TrainConfig(lr=1e-2, batch_size=32, max_epochs=2, patience=10)
    with caplog.at_level(logging.INFO, logger="iomt_ids.training.trainer"):
        Trainer(build_model("dnn", 6, 3), cfg, device="cpu", progress=False).fit(x, y, xv, yv)
    assert terminal.made == [] and len(_epoch_lines(caplog)) == 2


def test_early_stopping_callback_resets_between_fits_and_restores_best_weights() -> None:
    x, y, xv, _ = _data()
    noise = np.random.default_rng(1).integers(0, 3, len(xv))
    cfg = TrainConfig(lr=3e-2, batch_size=32, max_epochs=30, patience=2)
    es = EarlyStopping.from_config(cfg)
    model = build_model("dnn", 6, 3)
    trainer = Trainer(model, cfg, device="cpu", callbacks=[es])
    first = trainer.fit(x, y, xv, noise)
    assert first.stopped_early and first.best_epoch == es.best_epoch
    best = min(first, key=lambda r: r["val_loss"])
    assert first.best_epoch == best["epoch"]
    # the model holds the best epoch's weights: its validation loss is the best one
    with torch.no_grad():
        logits = model.eval()(torch.as_tensor(xv, dtype=torch.float32))
    val_loss = float(torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor(noise)))
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-5)
    second = trainer.fit(x, y, xv, noise)  # state from the first run does not leak into the second
    assert second[0]["epoch"] == 1 and second.best_epoch is not None and second.best_epoch <= len(second)


def test_a_duck_typed_callback_needs_only_the_hooks_it_uses() -> None:
    x, y, xv, yv = _data()
    seen: list[int] = []

    class OnlyEpochEnd:
        def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
            seen.append(record["epoch"])

    cfg = TrainConfig(lr=1e-2, batch_size=64, max_epochs=2, patience=10)
    Trainer(build_model("dnn", 6, 3), cfg, device="cpu", callbacks=[OnlyEpochEnd()]).fit(x, y, xv, yv)
    assert seen == [1, 2]
