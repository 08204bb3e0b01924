"""Tree baselines: fit in the pipeline, persist without pickle, reload to identical scores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.artifacts import load_bundle
from iomt_ids.exceptions import BundleError, ConfigError
from iomt_ids.models.trees import TREE_MODELS, ForestEstimator, fit_tree
from iomt_ids.training import get_preset
from iomt_ids.workflows import RunConfig, fit_bundle, train_run
from tests.conftest import REPO, synthetic_rows, write_synthetic_dataset


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust records of the compiled tables go to a folder of the test, not the user's cache."""
    monkeypatch.setenv("IOMT_IDS_CACHE_DIR", str(tmp_path / "user-cache"))


def _frame(n_per_class: int = 80) -> tuple:
    import pandas as pd

    parts, labels = [], []
    for k, label in enumerate(("Benign", "TCP/IP DDoS SYN", "ARP spoofing")):
        parts.append(synthetic_rows("v2", n_per_class, label_shift=2.0 * k, seed=k))
        labels += [label] * n_per_class
    return pd.concat(parts, ignore_index=True), np.asarray(labels, dtype=object)


@pytest.mark.parametrize("model", TREE_MODELS)
@pytest.mark.parametrize("task", [2, 19])
def test_fit_save_load_gives_identical_probabilities(model: str, task: int, tmp_path: Path) -> None:
    frame, labels = _frame()
    bundle, history = fit_bundle(frame, labels, task=task, model=model, seed=1)
    proba = bundle.predict_proba(frame)
    assert proba.shape == (len(frame), task)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (bundle.predict(frame) == np.asarray([lab if task == 19 else ("Benign" if lab == "Benign" else "Attack")
                                                 for lab in labels])).mean() > 0.9  # fmt: skip
    best = history[history.best_epoch - 1]  # one record per boosting iteration / per tree
    assert best["val_accuracy"] > 0.9 and best["trees"] == bundle.estimator.n_trees
    assert bundle.preprocessor.scale is False  # trees see cleaned, unscaled rows
    bundle.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    loaded = load_bundle(tmp_path)
    assert loaded.model_name == model and loaded.classes == bundle.classes
    np.testing.assert_array_equal(loaded.predict_proba(frame), proba)


def test_forest_arrays_match_scikit_learn() -> None:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    rf = RandomForestClassifier(n_estimators=15, random_state=0).fit(x, y)
    est = ForestEstimator.from_sklearn(rf, n_classes=4)  # class 3 never seen in training
    got = est.predict_proba(x)
    np.testing.assert_allclose(got[:, :3], rf.predict_proba(x), atol=1e-6)
    assert (got[:, 3] == 0).all()


def test_forest_file_is_loaded_without_pickle_and_checked(tmp_path: Path) -> None:
    frame, labels = _frame(40)
    bundle, _ = fit_bundle(frame, labels, task=19, model="random_forest")
    bundle.save(tmp_path)
    with np.load(tmp_path / "forest.npz", allow_pickle=False) as z:  # plain arrays only
        assert {"left", "right", "feature", "threshold", "value", "roots"} <= set(z.files)
    # a forest whose arrays do not fit the bundle's classes is refused
    with np.load(tmp_path / "forest.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["value"] = arrays["value"][:, :3]
    np.savez(tmp_path / "forest.npz", **arrays)
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(tmp_path)


def test_lightgbm_model_file_is_text_and_missing_file_is_a_bundle_error(tmp_path: Path) -> None:
    frame, labels = _frame(40)
    bundle, _ = fit_bundle(frame, labels, task=6, model="lightgbm")
    bundle.save(tmp_path)
    meta = json.loads((tmp_path / "bundle.json").read_text())
    assert meta["estimator"]["kind"] == "lightgbm"
    assert (tmp_path / "lightgbm.txt").read_text().startswith("tree")
    (tmp_path / "lightgbm.txt").unlink()
    with pytest.raises(BundleError, match="lightgbm.txt is missing"):
        load_bundle(tmp_path)


def test_unknown_tree_name_is_a_config_error() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="tree model must be one of"):
        fit_tree("xgboost", x, np.zeros(4, int), x, np.zeros(4, int), 2, get_preset("paper"))


def test_train_run_with_lightgbm_writes_bundle_and_report(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    m = train_run(RunConfig(data=tiny_dataset, task=19, model="lightgbm", out=out, progress=False))
    assert m["macro_f1"] > 0.9
    assert m["model"] == "lightgbm"
    for f in ("bundle.json", "lightgbm.txt", "metrics.json", "report.md", "confusion_matrix.png"):
        assert (out / f).stat().st_size > 0, f
    assert load_bundle(out).model_name == "lightgbm"


def test_train_run_robust_features_and_random_protocol(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "robust"
    m = train_run(RunConfig(data=tiny_dataset, task=6, model="random_forest", out=out, feature_set="robust",
                            protocol="random", progress=False))  # fmt: skip
    assert "Tot size" not in m["features"] and "LLC" not in m["features"] and "Variance" not in m["features"]
    assert m["feature_set"] == "robust" and m["split"].startswith("train+test pooled")
    with pytest.raises(ConfigError, match="protocol must be one of"):
        RunConfig(data=tiny_dataset, task=6, model="lightgbm", out=out, protocol="kfold")


def test_lightgbm_history_has_one_record_per_boosting_iteration(tmp_path: Path) -> None:
    frame, labels = _frame(40)
    bundle, history = fit_bundle(frame, labels, task=6, model="lightgbm", seed=1)
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1)) and len(history) > 1
    assert all(
        np.isfinite([r["loss"], r["val_loss"], r["accuracy"], r["val_accuracy"]]).all() for r in history
    )
    assert history[-1]["loss"] < history[0]["loss"]  # a curve, not one dot
    assert 1 <= history.best_epoch <= len(history) and bundle.estimator.n_trees == history.best_epoch


def test_forest_history_is_accuracy_versus_number_of_trees() -> None:
    from sklearn.ensemble import RandomForestClassifier

    from iomt_ids.models.trees import RANDOM_FOREST_PARAMS

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    est, history = fit_tree(
        "random_forest", x, y, x[::4], y[::4], 3, get_preset("paper"), {"n_estimators": 23}
    )
    assert [r["trees"] for r in history] == list(range(1, 24)) and history.best_epoch == 23
    assert history[-1]["val_accuracy"] == float((est.predict_proba(x[::4]).argmax(1) == y[::4]).mean())
    # grown in chunks (warm start) for progress: the same trees as one fit
    rf = RandomForestClassifier(**{**RANDOM_FOREST_PARAMS, "n_estimators": 23}, random_state=0).fit(x, y)
    one_shot = ForestEstimator.from_sklearn(rf, 3)
    assert np.array_equal(est.threshold, one_shot.threshold) and np.array_equal(est.value, one_shot.value)


def test_cli_train_lightgbm_logs_progress_and_draws_the_boosting_curve(tmp_path: Path) -> None:
    """stderr redirected to a file: one line every N iterations (rate, ETA), no carriage-return frames."""
    data = write_synthetic_dataset(tmp_path / "ds", n_train=60, n_test=20)
    out = tmp_path / "run"
    err = tmp_path / "stderr.txt"
    cli = "import sys; from iomt_ids.cli import main; sys.argv = ['iomt-ids', *sys.argv[1:]]; main()"
    env = {**os.environ, "IOMT_IDS_CACHE_DIR": str(tmp_path / "cache")}
    with err.open("w") as fh:
        res = subprocess.run(
            [sys.executable, "-c", cli, "train", "--data", str(data), "--task", "6", "--model", "lightgbm",
             "--preset", "paper", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=fh, text=True, cwd=REPO, env=env, timeout=600,
        )  # fmt: skip
    text = err.read_text()
    assert res.returncode == 0, text
    assert "\r" not in text  # no tqdm frames in a file
    lines = re.findall(r"lightgbm: (\d+)/(\d+) it \(([\d.]+) it/s, elapsed \S+, ETA \S+\)", text)
    done = [int(d) for d, _, _ in lines]
    assert len(lines) >= 5 and done == sorted(done) and done[0] < done[-1]
    assert len(set(np.diff(done[:-1]))) <= 1  # every N iterations
    history = json.loads((out / "history.json").read_text())
    records = history["epochs"]
    assert len(records) == done[-1] > 1 and [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trees"] == history["best_epoch"] == load_bundle(out).estimator.n_trees
    assert f"({metrics['trees']} boosting rounds)" in res.stdout
    assert "compiled lightgbm.txt to branch code" in text and (out / "compiled-trees-code.npz").is_file()
    assert (out / "training_curves.png").stat().st_size > 0 and "training_curves.png" in metrics["figures"]
