"""The ensemble estimator: weights from validation rows, a bundle that round-trips, and untrusted bundle.json.

Real components throughout: a fitted cleaning-only Preprocessor (the bundle's), a DNN
with its own log1p + scaling, a LightGBM booster fitted on the cleaned rows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.labels import classes_for_task
from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.exceptions import BundleError, ConfigError
from iomt_ids.features.schema import columns_for
from iomt_ids.models import MODELS, trees
from iomt_ids.models.base import TorchEstimator
from iomt_ids.models.ensemble import (
    MANIFEST,
    EnsembleEstimator,
    Member,
    blend,
    choose_weight,
    macro_f1,
)
from iomt_ids.models.registry import build_model
from iomt_ids.training.config import get_preset
from tests.conftest import synthetic_rows

TASK = 6
CLASSES = classes_for_task(TASK)


def _raw(n_per_class: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw v2 rows of all 6 classes (overlapping), with the special values real rows hold."""
    frames = [synthetic_rows("v2", n_per_class, label_shift=0.8 * k, seed=seed * 10 + k) for k in range(TASK)]
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[::17, "Rate"] = np.inf  # a window of one timestamp
    frame.loc[::13, "Std"] = np.nan  # a one-packet window
    y = np.repeat(np.arange(TASK), n_per_class)
    return frame[list(columns_for("v2"))].to_numpy(np.float64), y


def _ensemble_bundle(w_deep: float = 0.4, lgb_seed: int = 0) -> tuple[ModelBundle, np.ndarray]:
    raw, y = _raw()
    pre = Preprocessor(input_columns=columns_for("v2"), scale=False).fit(raw)  # the bundle's: cleaning only
    x = pre.transform(raw)
    deep_pre = Preprocessor(input_columns=pre.kept_columns_, log_columns=("Rate", "Tot sum"), scale=True).fit(
        x
    )
    torch.manual_seed(0)
    deep = TorchEstimator("dnn", build_model("dnn", deep_pre.n_features_out, TASK).eval())
    config = get_preset("fast").with_overrides(seed=lgb_seed)
    tree, _ = trees.fit_tree("lightgbm", x, y, x[::5], y[::5], TASK, config, {"num_boost_round": 15})
    members = [Member(deep, w_deep, deep_pre), Member(tree, round(1.0 - w_deep, 6))]
    est = EnsembleEstimator(members, {"deep": "dnn", "weight_deep": w_deep})
    bundle = ModelBundle(estimator=est, preprocessor=pre, classes=CLASSES, task=TASK, release="v2")
    return bundle, raw


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelBundle, np.ndarray, Path]:
    bundle, raw = _ensemble_bundle()
    path = bundle.save(tmp_path_factory.mktemp("ensemble") / "bundle")
    return bundle, raw, path


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, fn: Callable[[list[dict[str, Any]]], None]) -> None:
    """Apply ``fn`` to the members in bundle.json and in the manifest (an attacker edits both)."""
    for name, get in (
        ("bundle.json", lambda d: d["estimator"]["members"]),
        (MANIFEST, lambda d: d["members"]),
    ):
        doc = json.loads((path / name).read_text())
        fn(get(doc))
        (path / name).write_text(json.dumps(doc))


# -- choosing the weights ------------------------------------------------------------------------


def test_weights_come_from_the_rows_given_not_from_test_rows() -> None:
    # validation: model a is right, model b wrong; test: the other way round
    y = np.array([0, 1, 2, 0, 1, 2])
    right, wrong = np.eye(3)[y] * 0.8 + 0.2 / 3, np.eye(3)[(y + 1) % 3] * 0.8 + 0.2 / 3
    on_validation = choose_weight(right, wrong, y)
    on_test = choose_weight(wrong, right, y)
    assert on_validation["weight"] == 1.0 and on_validation["macro_f1"] == 1.0
    assert on_test["weight"] == 0.0  # rows of the other split would have chosen the opposite
    assert [r["weight"] for r in on_validation["grid"]] == [round(0.05 * i, 2) for i in range(21)]


def test_macro_f1_ties_go_to_the_lower_log_loss() -> None:
    y = np.array([0, 1, 0, 1])
    confident = np.array([[0.99, 0.01], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]])
    hesitant = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.4, 0.6]])
    c = choose_weight(hesitant, confident, y)
    assert all(r["macro_f1"] == 1.0 for r in c["grid"])  # every weight is perfect on macro-F1 ...
    assert c["weight"] == 0.0  # ... so the lowest log-loss (all on the confident model) wins
    assert c["log_loss"] == min(r["log_loss"] for r in c["grid"])


def test_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    assert macro_f1(y, pred, 5) == pytest.approx(f1_score(y, pred, average="macro"))


def test_bad_weights_and_nesting_are_refused() -> None:
    bundle, _ = _ensemble_bundle()
    deep, tree = bundle.estimator.members
    with pytest.raises(ConfigError, match="sum to 1"):
        EnsembleEstimator([Member(deep.estimator, 0.5, deep.preprocessor), Member(tree.estimator, 0.6)])
    with pytest.raises(ConfigError, match="cannot itself be an ensemble"):
        EnsembleEstimator([Member(bundle.estimator, 1.0)])
    with pytest.raises(ConfigError, match="grid weights must lie in"):
        choose_weight(np.ones((2, 2)) / 2, np.ones((2, 2)) / 2, np.array([0, 1]), grid=(0.5, 1.5))


# -- probabilities and the bundle ----------------------------------------------------------------


def test_probabilities_are_the_weighted_vote_and_rows_sum_to_one(
    saved: tuple[ModelBundle, np.ndarray, Path],
) -> None:
    bundle, raw, _ = saved
    proba = bundle.predict_proba(raw)
    assert proba.shape == (len(raw), TASK) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    x = bundle.transform(raw)
    p_deep, p_tree = bundle.estimator.member_probas(x)
    np.testing.assert_allclose(proba, 0.4 * p_deep + 0.6 * p_tree, atol=1e-5)
    assert not np.allclose(p_deep, p_tree, atol=1e-3)  # two different members, both counted
    assert np.allclose(blend([p_deep, p_tree], [1.0, 0.0]), p_deep / p_deep.sum(1, keepdims=True), atol=1e-6)


def test_save_load_round_trip_gives_identical_probabilities(
    saved: tuple[ModelBundle, np.ndarray, Path],
) -> None:
    bundle, raw, path = saved
    meta = json.loads((path / "bundle.json").read_text())
    est = meta["estimator"]
    assert est["kind"] == "ensemble" and est["model_file"] == MANIFEST
    assert [m["dir"] for m in est["members"]] == ["members/0", "members/1"]
    assert (path / "members/0/model.safetensors").is_file() and (path / "members/1/lightgbm.txt").is_file()
    assert est["selection"] == {"deep": "dnn", "weight_deep": 0.4}
    loaded = load_bundle(path)
    assert loaded.model_name == "ensemble" and loaded.version == bundle.version
    assert [m.name for m in loaded.estimator.members] == ["dnn", "lightgbm"]
    assert loaded.estimator.weights == [0.4, 0.6]
    assert (
        loaded.estimator.members[0].preprocessor.to_dict()
        == bundle.estimator.members[0].preprocessor.to_dict()
    )
    assert loaded.estimator.members[1].preprocessor is None
    assert loaded.preprocessor.scale is False  # the bundle's own preprocessing only cleans
    np.testing.assert_array_equal(loaded.predict_proba(raw), bundle.predict_proba(raw))
    assert (
        getattr(loaded.estimator, "module", None) is None
    )  # not mistaken for a PyTorch model (export, explain)


def test_version_id_covers_every_member(saved: tuple[ModelBundle, np.ndarray, Path], tmp_path: Path) -> None:
    bundle, _, _ = saved
    same, _ = _ensemble_bundle()
    same.save(tmp_path / "same")
    assert same.version == bundle.version  # same weights, same id, wherever saved
    deep_changed, _ = _ensemble_bundle()
    with torch.no_grad():
        next(deep_changed.estimator.members[0].estimator.module.parameters()).add_(0.01)
    deep_changed.save(tmp_path / "deep_changed")
    tree_changed, _ = _ensemble_bundle()
    tree_changed.estimator.members[1].estimator.booster = _refit_booster(raw_seed=3)
    tree_changed.save(tmp_path / "tree_changed")
    weight_changed, _ = _ensemble_bundle(w_deep=0.45)
    weight_changed.save(tmp_path / "weight_changed")
    versions = [bundle.version, deep_changed.version, tree_changed.version, weight_changed.version]
    assert len(set(versions)) == 4, versions
    assert all(v.startswith("ensemble-6c-") for v in versions)


def _refit_booster(raw_seed: int) -> Any:
    raw, y = _raw(seed=raw_seed)
    x = Preprocessor(input_columns=columns_for("v2"), scale=False).fit(raw).transform(raw)
    config = get_preset("fast")
    est, _ = trees.fit_tree("lightgbm", x, y, x[::5], y[::5], TASK, config, {"num_boost_round": 15})
    return est.booster


# -- bundle.json is untrusted --------------------------------------------------------------------


@pytest.mark.parametrize(("member", "file"), [(0, "model.safetensors"), (1, "lightgbm.txt")])
def test_a_tampered_member_file_is_refused(
    saved: tuple[ModelBundle, np.ndarray, Path], tmp_path: Path, member: int, file: str
) -> None:
    path = _copy(saved[2], tmp_path)
    target = path / "members" / str(member) / file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    target.write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match=rf"bundle\.json: field 'estimator\.members\[{member}\]\.sha256'"
    ) as e:
        load_bundle(path)
    assert "changed after the bundle was saved" in str(e.value) and file in str(e.value)


def test_bundle_json_edited_without_the_manifest_is_refused(
    saved: tuple[ModelBundle, np.ndarray, Path], tmp_path: Path
) -> None:
    path = _copy(saved[2], tmp_path)
    meta = json.loads((path / "bundle.json").read_text())
    meta["estimator"]["members"][0]["weight"], meta["estimator"]["members"][1]["weight"] = 0.9, 0.1
    (path / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(
        BundleError, match=r"bundle\.json: field 'estimator\.members' does not match the manifest"
    ):
        load_bundle(path)


@pytest.mark.parametrize(
    ("edit", "field", "why"),
    [
        (lambda ms: ms[0].update(dir="../outside"), r"estimator\.members\[0\]\.dir", "contains '..'"),
        (lambda ms: ms[1].update(dir="/etc"), r"estimator\.members\[1\]\.dir", "absolute path"),
        (
            lambda ms: ms[0]["estimator"].update(weights="../../../model.safetensors"),
            r"estimator\.members\[0\]\.estimator\.weights",
            "contains '..'",
        ),
        (lambda ms: ms[1].update(name="ensemble"), r"estimator\.members\[1\]\.name", "must be one of"),
        (
            lambda ms: ms[1]["estimator"].update(kind="torch"),
            r"estimator\.members\[1\]\.estimator\.kind",
            "must be",
        ),
        (lambda ms: ms[0].update(weight=1.5), r"estimator\.members\[0\]\.weight", "in [0, 1]"),
        (lambda ms: ms[0].update(sha256={}), r"estimator\.members\[0\]\.sha256", "no digest"),
        (
            lambda ms: ms[0]["preprocessing"].update(
                input_columns=ms[0]["preprocessing"]["input_columns"][::-1]
            ),
            r"estimator\.members\[0\]\.preprocessing",
            "must be the bundle's preprocessed columns",
        ),
        (
            lambda ms: ms[0]["preprocessing"].update(input_columns=["Rate"]),
            r"estimator\.members\[0\]\.preprocessing",
            "is not a fitted preprocessing state",
        ),
    ],
)
def test_member_fields_are_checked_before_anything_is_read(
    saved: tuple[ModelBundle, np.ndarray, Path],
    tmp_path: Path,
    edit: Callable[[list[dict[str, Any]]], None],
    field: str,
    why: str,
) -> None:
    path = _copy(saved[2], tmp_path)
    _edit(path, edit)
    with pytest.raises(BundleError, match=rf"bundle\.json: field '{field}'") as e:
        load_bundle(path)
    assert why in str(e.value)


def test_a_member_folder_linked_out_of_the_bundle_is_refused(
    saved: tuple[ModelBundle, np.ndarray, Path], tmp_path: Path
) -> None:
    path = _copy(saved[2], tmp_path)
    outside = tmp_path / "outside"
    shutil.move(path / "members" / "1", outside)
    os.symlink(outside, path / "members" / "1")
    with pytest.raises(BundleError, match=r"field 'estimator\.members\[1\]\.dir'.*outside the bundle folder"):
        load_bundle(path)


def test_the_registry_knows_the_ensemble() -> None:
    entry = MODELS["ensemble"]
    assert entry.kind == "ensemble" and entry.resolve() is EnsembleEstimator


def test_the_scoring_service_serves_an_ensemble_and_onnx_export_refuses_it(
    saved: tuple[ModelBundle, np.ndarray, Path],
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from iomt_ids.export.inference import inference_module
    from iomt_ids.serving import ServeSettings, create_app

    _, raw, path = saved
    bundle = load_bundle(path)
    frame = pd.DataFrame(raw[:4], columns=list(columns_for("v2")))
    rows = [
        {c: (None if np.isnan(v) else "inf" if np.isinf(v) else float(v)) for c, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]
    res = TestClient(create_app(bundle, ServeSettings())).post("/v1/predict", json={"rows": rows})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["model"] == "ensemble" and body["model_version"] == bundle.version
    served = np.array([[p["probabilities"][c] for c in CLASSES] for p in body["predictions"]])
    np.testing.assert_allclose(served, bundle.predict_proba(raw[:4]), atol=1e-6)
    with pytest.raises(BundleError, match="model 'ensemble' is not a PyTorch model"):
        inference_module(bundle)
