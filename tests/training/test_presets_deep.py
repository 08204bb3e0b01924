"""The ``deep`` preset: it exists and validates, trains a small model end to end, and fits
its preprocessing on training rows only (no mocks: real fits on small synthetic data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from iomt_ids.artifacts import load_bundle
from iomt_ids.data.loader import load_dataset
from iomt_ids.data.split import stratified_split
from iomt_ids.exceptions import ConfigError
from iomt_ids.features.schema import columns_for
from iomt_ids.training import PRESETS, TrainConfig, get_preset
from iomt_ids.workflows import RunConfig, train_run
from iomt_ids.workflows.recipes import HEAVY_TAILED, model_kwargs_for, preprocessor_for
from iomt_ids.workflows.train import encode_labels, fit_on_arrays, prepare_splits
from tests.conftest import synthetic_rows


def test_deep_preset_exists_and_validates() -> None:
    p = get_preset("deep")
    assert p is PRESETS["deep"] and p.name == "deep"
    assert (p.lr, p.batch_size, p.max_epochs, p.patience, p.schedule, p.warmup_epochs) == (
        3e-3, 1024, 150, 20, "cosine", 2,
    )  # fmt: skip
    assert (p.loss, p.label_smoothing, p.weight_decay, p.restore_best) == ("ce", 0.1, 0.0, True)
    assert TrainConfig(**p.as_dict()) == p  # its fields pass the checks of a fresh config
    assert p.with_overrides(max_epochs=2, seed=3).max_epochs == 2
    with pytest.raises(ConfigError, match="loss"):
        p.with_overrides(loss="hinge")
    RunConfig(data=Path("."), task=19, model="dnn", out=Path("x"), preset="deep")  # accepted by the pipeline


def test_deep_recipe_sizes_and_preprocessing() -> None:
    cols = columns_for("v2")
    pre = preprocessor_for("dnn", "deep", cols)
    assert pre.scale and set(pre.log_columns) == {c for c in HEAVY_TAILED if c in cols}
    assert pre.log_columns == preprocessor_for("dnn", "tuned", cols).log_columns  # the tuned transform
    trees = preprocessor_for("lightgbm", "deep", cols)
    assert trees.log_columns == () and not trees.scale
    assert model_kwargs_for("dnn", "deep") == {"dense_units": (512, 256), "dropout": 0.1}
    assert model_kwargs_for("gru_dnn", "deep")["dense_units"] == (512, 256)
    assert model_kwargs_for("dnn", "deep", {"dropout": 0.2}) == {"dense_units": (512, 256), "dropout": 0.2}
    # the published presets keep their sizes
    assert model_kwargs_for("dnn", "tuned") == {"dense_units": (256, 128), "dropout": 0.1}
    assert model_kwargs_for("dnn", "paper") == {} and model_kwargs_for("dnn", "fast") == {}


def test_deep_preset_trains_end_to_end_with_train_rows_only_preprocessing(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    m = train_run(
        RunConfig(data=tiny_dataset, task=19, model="dnn", out=out, preset="deep", epochs=2, batch_size=32,
                  progress=False)
    )  # fmt: skip
    assert m["accuracy"] > 0.9  # three well-separated synthetic classes
    assert json.loads((out / "metrics.json").read_text())["macro_f1"] == pytest.approx(m["macro_f1"])
    bundle = load_bundle(out)
    cfg = bundle.meta["train_config"]
    assert (cfg["name"], cfg["label_smoothing"], cfg["max_epochs"]) == ("deep", 0.1, 2)
    assert bundle.meta["preset"] == "deep"
    first = next(mod for mod in bundle.estimator.module.modules() if isinstance(mod, torch.nn.Linear))
    assert first.out_features == 512
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 2

    # the bundle's scaler is the one fitted on the training rows the pipeline kept (validation held out)
    prepared = prepare_splits(load_dataset(tiny_dataset), 19)
    tr, va = stratified_split(prepared.y_train, 0.2, 0)
    expected = preprocessor_for("dnn", "deep", prepared.train.columns).fit(prepared.train.table, rows=tr)
    np.testing.assert_allclose(bundle.preprocessor.mean_, expected.mean_)
    np.testing.assert_allclose(bundle.preprocessor.scale_, expected.scale_)
    on_all = preprocessor_for("dnn", "deep", prepared.train.columns).fit(prepared.train.table)
    assert not np.allclose(on_all.mean_, expected.mean_)  # so the check above can tell them apart


def test_deep_preprocessing_ignores_validation_rows(tmp_path: Path) -> None:
    """Extreme values placed only in the validation rows change neither the scaler nor the inf caps."""
    labels = np.repeat(["Benign", "TCP/IP DDoS SYN", "ARP spoofing"], 60)
    frame = np.vstack([synthetic_rows("v2", 60, label_shift=3.0 * k, seed=k).to_numpy() for k in range(3)])
    cols = columns_for("v2")
    y, classes = encode_labels(labels, 19)
    config = get_preset("deep").with_overrides(max_epochs=2, batch_size=32, seed=1)
    tr, va = stratified_split(y, config.val_fraction, config.seed)
    poisoned = frame.copy()
    poisoned[va] *= 1e6  # Rate reaches ~1e8 on validation rows only
    bundle, history, sizes = fit_on_arrays(
        poisoned, y, release="v2", columns=cols, classes=classes, task=19, model="dnn", config=config,
        device="cpu",
    )  # fmt: skip
    assert sizes == {"rows_train": len(tr), "rows_val": len(va)} and len(history) == 2
    clean = preprocessor_for("dnn", "deep", cols).fit(frame, rows=tr)
    np.testing.assert_allclose(bundle.preprocessor.mean_, clean.mean_)
    np.testing.assert_allclose(bundle.preprocessor.scale_, clean.scale_)
    rate = cols.index("Rate")
    assert bundle.preprocessor.inf_caps_["Rate"][1] == pytest.approx(frame[tr, rate].max())
    assert bundle.preprocessor.inf_caps_["Rate"][1] < poisoned[va, rate].max()
