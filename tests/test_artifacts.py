from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.artifacts import load_bundle
from iomt_ids.exceptions import BundleError, SchemaError
from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.workflows import fit_bundle
from tests.conftest import synthetic_rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    import pandas as pd

    frame = pd.concat(
        [synthetic_rows("v2", 150, 0.0, 1), synthetic_rows("v2", 150, 3.0, 2)], ignore_index=True
    )
    labels = ["Benign"] * 150 + ["TCP/IP DDoS SYN"] * 150
    bundle, hist = fit_bundle(frame, labels, task=2, model="gru_dnn", preset="fast", epochs=3, device="cpu")
    out = tmp_path_factory.mktemp("bundle")
    bundle.save(out)
    return bundle, out


def test_bundle_round_trip_gives_identical_probabilities(trained: tuple) -> None:
    bundle, out = trained
    rows = synthetic_rows("v2", 20, 1.5, 9)
    rows.loc[0, "Rate"] = np.inf
    rows.loc[1, "Std"] = np.nan
    again = load_bundle(out)
    p1, p2 = bundle.predict_proba(rows), again.predict_proba(rows)
    np.testing.assert_allclose(p1, p2, rtol=1e-6)
    assert again.classes == ("Benign", "Attack") and again.release == "v2" and again.task == 2
    assert again.version.startswith("gru_dnn-2c-") and again.version == bundle.version
    meta = json.loads((out / "bundle.json").read_text())
    assert {"preprocessing", "versions", "train_config", "input_columns"} <= set(meta)
    assert (out / "model.safetensors").exists() and not list(out.glob("*.pt")) and not list(out.glob("*.pkl"))


def test_column_order_does_not_matter_but_names_do(trained: tuple) -> None:
    bundle, _ = trained
    rows = synthetic_rows("v2", 10, 0.5, 4)
    np.testing.assert_allclose(
        bundle.predict_proba(rows), bundle.predict_proba(rows[list(reversed(V2_COLUMNS))])
    )
    with pytest.raises(SchemaError, match=r"Missing: \['IAT'\]; unexpected: \['iat'\]"):
        bundle.predict_proba(rows.rename(columns={"IAT": "iat"}))
    with pytest.raises(SchemaError, match=r"shape \(n, 39\)"):
        bundle.predict_proba(np.zeros((3, 45)))


def test_loading_refuses_a_schema_mismatch_or_missing_files(trained: tuple, tmp_path: Path) -> None:
    _, out = trained
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    meta["input_columns"] = meta["input_columns"][:-1]
    (bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match="do not match the v2 schema"):
        load_bundle(bad)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "missing")
    (bad / "bundle.json").unlink()
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(bad)


# -- version id: the weights, preprocessing and labels only -------------------------------


def test_version_depends_on_the_weights_not_on_other_files_in_the_folder(
    trained: tuple, tmp_path: Path
) -> None:
    import torch

    _, out = trained
    bundle = load_bundle(out)
    clean = bundle.save(tmp_path / "clean")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "train_seconds": 123.4}))
    (junk / "model.onnx").write_bytes(b"an earlier export")
    (junk / "history.json").write_text("[]")
    v_clean = json.loads((clean / "bundle.json").read_text())["version"]
    bundle.save(junk)
    v_junk = json.loads((junk / "bundle.json").read_text())["version"]
    assert v_clean == v_junk == load_bundle(junk).version == load_bundle(out).version
    with torch.no_grad():
        next(bundle.torch_module.parameters()).view(-1)[0] += 1.0  # one weight changes
    assert json.loads((bundle.save(tmp_path / "changed") / "bundle.json").read_text())["version"] != v_clean
    again = load_bundle(out)
    again.preprocessor.mean_ = again.preprocessor.mean_ + 1.0  # the scaling changes
    assert json.loads((again.save(tmp_path / "scaled") / "bundle.json").read_text())["version"] != v_clean


def test_the_training_row_record_travels_with_the_bundle(trained: tuple, tmp_path: Path) -> None:
    _, out = trained
    bundle = load_bundle(out)
    assert bundle.training_fingerprints() is None and "train_rows" not in bundle.meta
    bundle.train_rows = np.array([3, 7, 11], dtype=np.uint64)
    saved = bundle.save(tmp_path / "with")
    loaded = load_bundle(saved)
    assert loaded.train_rows is None  # read on demand only
    np.testing.assert_array_equal(loaded.training_fingerprints(), [3, 7, 11])
    assert loaded.version == load_bundle(out).version  # the record is not part of the id
    resaved = load_bundle(saved).save(tmp_path / "copy")  # a loaded bundle keeps its record when saved
    np.testing.assert_array_equal(load_bundle(resaved).training_fingerprints(), [3, 7, 11])
    np.save(saved / "train_rows.npy", np.array([7, 3], dtype=np.uint64))
    with pytest.raises(BundleError, match="sorted 1-D array of unique uint64"):
        load_bundle(saved).training_fingerprints()


# -- bundle.json is untrusted -----------------------------------------------------------


def _tampered(out: Path, tmp_path: Path, edit: object) -> Path:
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    edit(meta)  # type: ignore[operator]
    (bad / "bundle.json").write_text(json.dumps(meta))
    return bad


@pytest.mark.parametrize(
    "name,message",
    [
        ("/etc/passwd", r"field 'estimator.weights' = '/etc/passwd' is an absolute path"),
        ("../model.safetensors", r"field 'estimator.weights' = '../model.safetensors' contains '\.\.'"),
        ("sub/../../x", r"field 'estimator.weights' = 'sub/../../x' contains '\.\.'"),
        (
            "C:\\weights.safetensors",
            r"field 'estimator.weights' = .*weights.safetensors' is an absolute path",
        ),
        ("", r"field 'estimator.weights' must be a file name inside the bundle folder; got ''"),
        (7, r"field 'estimator.weights' must be a file name inside the bundle folder; got 7"),
    ],
)
def test_file_names_outside_the_bundle_folder_are_refused(
    trained: tuple, tmp_path: Path, name: object, message: str
) -> None:
    _, out = trained
    bad = _tampered(out, tmp_path, lambda m: m["estimator"].update(weights=name))
    with pytest.raises(BundleError, match=r"bundle\.json: " + message):
        load_bundle(bad)


def test_a_symlink_out_of_the_folder_and_a_stray_record_name_are_refused(
    trained: tuple, tmp_path: Path
) -> None:
    _, out = trained
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((out / "model.safetensors").read_bytes())
    bad = _tampered(out, tmp_path, lambda m: m["estimator"].update(weights="link.safetensors"))
    (bad / "link.safetensors").symlink_to(outside)
    with pytest.raises(
        BundleError, match=r"'estimator.weights' = 'link.safetensors' resolves to .*outside the bundle"
    ):
        load_bundle(bad)
    bad = _tampered(out, tmp_path / "2", lambda m: m.update(train_rows={"file": "../../rows.npy", "rows": 1}))
    with pytest.raises(
        BundleError, match=r"bundle\.json: field 'train_rows.file' = '../../rows.npy' contains"
    ):
        load_bundle(bad)


@pytest.mark.parametrize("kind,field", [("lightgbm", "model_file"), ("random_forest", "model_file")])
def test_tree_loaders_refuse_files_outside_the_folder(tmp_path: Path, kind: str, field: str) -> None:
    from iomt_ids.models import trees  # noqa: F401  (registers the tree loaders)
    from iomt_ids.models.base import ESTIMATORS

    for name, message in (("/tmp/x.txt", "is an absolute path"), ("../x.txt", "contains '..'")):
        with pytest.raises(
            BundleError, match=rf"bundle\.json: field 'estimator.{field}' = '{name}' {message}"
        ):
            ESTIMATORS[kind](tmp_path, {"estimator": {field: name}}, 39, 2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"dense_units": [100_000]},
            r"'dense_units' = \[100000\]: layer widths must be in 1\.\.8192; got \[100000\]",
        ),
        ({"dense_units": [0, 32]}, r"'dense_units' = \[0, 32\]: layer widths must be in 1\.\.8192"),
        ({"rnn_units": [64] * 17}, r"'rnn_units' = \[64, .*\] must list 1 to 16 layers"),
        ({"rnn_units": []}, r"'rnn_units' = \[\] must list 1 to 16 layers"),
        ({"dense_units": "64"}, r"'dense_units' must be a list of integers; got '64'"),
        ({"dense_units": [64.5]}, r"'dense_units' must be a list of integers"),
        ({"dropout": 1.0}, r"'dropout' = 1\.0 must be a number in \[0\.0, 1\.0\)"),
        ({"dropout": -0.1}, r"'dropout' = -0\.1 must be a number"),
        ({"batch_norm": "yes"}, r"'batch_norm' = 'yes' must be true or false"),
        ({"cell": "gru"}, r"\['cell'\] are not arguments of model 'gru_dnn' that a bundle may set"),
        ({"n_features": 10**9}, r"\['n_features'\] are not arguments"),
        ([64], r" must be an object; got \[64\]"),
        (
            {"rnn_units": [8192] * 16},
            r"describes a model of \d+ bytes of parameters, more than the \d+ bytes of",
        ),
    ],
)
def test_model_arguments_out_of_bounds_are_refused_before_building(
    trained: tuple, tmp_path: Path, kwargs: object, message: str
) -> None:
    _, out = trained
    bad = _tampered(out, tmp_path, lambda m: m["estimator"].update(model_kwargs=kwargs))
    with pytest.raises(BundleError, match=r"bundle\.json: field 'estimator.model_kwargs'.*" + message):
        load_bundle(bad)


def test_an_unknown_model_name_is_a_bundle_error(trained: tuple, tmp_path: Path) -> None:
    _, out = trained
    bad = _tampered(out, tmp_path, lambda m: m.update(model_name="cnn"))
    with pytest.raises(BundleError, match=r"bundle\.json: field 'model_name' = 'cnn' is not one of"):
        load_bundle(bad)
