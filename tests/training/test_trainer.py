from __future__ import annotations

import numpy as np
import pytest

from iomt_ids.exceptions import ConfigError
from iomt_ids.models import build_model
from iomt_ids.training import PRESETS, EarlyStopping, TrainConfig, Trainer


def _blobs(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 6)).astype(np.float32) + y[:, None] * 2.0
    return x, y


def test_paper_preset_is_the_papers_recipe() -> None:
    p = PRESETS["paper"]
    assert (p.lr, p.batch_size, p.max_epochs, p.patience, p.restore_best, p.val_fraction, p.loss) == (
        1e-4,
        64,
        50,
        5,
        True,
        0.2,
        "ce",
    )


def test_trainer_learns_and_records_history() -> None:
    x, y = _blobs()
    cfg = TrainConfig(lr=1e-2, batch_size=64, max_epochs=6, patience=3)
    model = build_model("gru_dnn", 6, 3)
    hist = Trainer(model, cfg, device="cpu", progress=False).fit(
        x[:480, None], y[:480], x[480:, None], y[480:]
    )
    assert 1 <= len(hist) <= 6
    assert set(hist[0]) >= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert hist[-1]["val_accuracy"] > 0.9
    proba = Trainer(model, cfg, device="cpu", progress=False).predict_proba(x[480:, None])
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


def test_early_stopping_stops_and_restores_best_weights() -> None:
    x, y = _blobs()
    rng = np.random.default_rng(1)
    y_val_noise = rng.integers(0, 3, 120)  # validation labels unrelated to x: val loss rises as it fits
    cfg = TrainConfig(lr=3e-2, batch_size=32, max_epochs=40, patience=2)
    model = build_model("dnn", 6, 3)
    hist = Trainer(model, cfg, device="cpu", progress=False).fit(x[:480], y[:480], x[480:], y_val_noise)
    assert hist.stopped_early and len(hist) < 40
    best = min(r["val_loss"] for r in hist)
    assert hist.best_epoch == next(r["epoch"] for r in hist if r["val_loss"] == best)


def test_early_stopping_flag_semantics() -> None:
    es = EarlyStopping(patience=2)
    assert [es.step({"val_loss": v, "epoch": i}) for i, v in enumerate([3, 2, 2.5, 2.6, 1.0])] == [
        False,
        False,
        False,
        True,
        False,
    ]


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="TrainConfig.loss"):
        TrainConfig(loss="hinge")
    with pytest.raises(ConfigError, match="TrainConfig.batch_size"):
        TrainConfig(batch_size=0)


def test_progress_redirected_to_a_file_is_one_log_line_per_epoch(tmp_path) -> None:
    """With stderr a file (``iomt-ids train 2> log``), no tqdm '\\r' frames: one line per epoch."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import logging
        import numpy as np
        from iomt_ids.models import build_model
        from iomt_ids.training import TrainConfig, Trainer

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, 4000)
        x = rng.normal(size=(4000, 6)).astype(np.float32) + y[:, None]
        cfg = TrainConfig(lr=1e-3, batch_size=8, max_epochs=3, patience=10)
        hist = Trainer(build_model("dnn", 6, 3), cfg, device="cpu", progress=True).fit(
            x[:3200], y[:3200], x[3200:], y[3200:]
        )
        print(len(hist))
        """
    )
    err = tmp_path / "train.log"
    with err.open("w") as fh:
        out = subprocess.run(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=fh,
            text=True,
            check=True,
            timeout=300,
        )
    text = err.read_text()
    assert "\r" not in text
    epochs = int(out.stdout.strip())
    epoch_lines = [ln for ln in text.splitlines() if "iomt_ids.training.trainer: epoch" in ln]
    assert len(epoch_lines) == epochs == 3
    assert "row/s" not in text and "it/s" not in text
