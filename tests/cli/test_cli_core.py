"""The train / evaluate / predict / reproduce commands through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from tests.conftest import synthetic_rows

runner = CliRunner()
_register()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import write_synthetic_dataset

    root = tmp_path_factory.mktemp("cli")
    data = write_synthetic_dataset(root / "ds")
    out = root / "run"
    res = runner.invoke(
        app, ["train", "--data", str(data), "--task", "6", "--model", "lstm_dnn", "--preset", "fast",
              "--epochs", "3", "--out", str(out), "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "lstm_dnn 6-class: accuracy" in res.output
    return data, out


def test_train_writes_bundle_and_metrics(run_dir: tuple[Path, Path]) -> None:
    _, out = run_dir
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == 6 and m["model"] == "lstm_dnn" and 0.0 <= m["macro_f1"] <= 1.0
    assert (out / "bundle.json").exists()


def test_train_options_reach_the_run(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = run_dir
    out = tmp_path / "robust"
    res = runner.invoke(
        app, ["train", "--data", str(data), "--task", "2", "--model", "dnn", "--preset", "fast", "--epochs", "2",
              "--batch-size", "32", "--lr", "0.002", "--feature-set", "robust", "--protocol", "random",
              "--torch-threads", "1", "--out", str(out), "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["feature_set"] == "robust" and "random" in m["split"]
    assert m["train_config"]["batch_size"] == 32 and m["train_config"]["lr"] == 0.002
    assert "Number" not in m["features"] and "Tot size" not in m["features"]  # dropped by the robust set
    res = runner.invoke(
        app, ["train", "--data", str(data), "--task", "2", "--model", "dnn", "--feature-set", "tiny",
              "--out", str(tmp_path / "x")],
    )  # fmt: skip
    assert res.exit_code == 2 and "feature_set must be one of" in res.output and "'tiny'" in res.output


def test_evaluate_on_dataset_folder_and_on_a_csv_folder(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = run_dir
    res = runner.invoke(
        app, ["evaluate", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "e1")]
    )
    assert res.exit_code == 0, res.output
    m1 = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    res = runner.invoke(
        app, ["evaluate", "--model", str(out), "--data", str(data / "test"), "--out", str(tmp_path / "e2")]
    )
    assert res.exit_code == 0, res.output
    m2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert m1["rows_test"] == m2["rows_test"] == 120 and m1["accuracy"] == m2["accuracy"]
    assert (tmp_path / "e1" / "confusion_matrix.png").exists()


def test_predict_writes_class_and_probabilities(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = run_dir
    rows = synthetic_rows("v2", 7, 3.0, 5)
    src = tmp_path / "rows.csv"
    rows.to_csv(src, index=False)
    res = runner.invoke(
        app, ["predict", "--model", str(out), "--input", str(src), "--output", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 7
    probs = pred[[c for c in pred.columns if c.startswith("p_")]]
    assert list(probs.columns) == ["p_Benign", "p_DDoS", "p_DoS", "p_MQTT", "p_RECON", "p_SPOOFING"]
    assert (abs(probs.sum(axis=1) - 1) < 1e-4).all()
    assert set(pred["predicted_class"]) <= {"Benign", "DDoS", "DoS", "MQTT", "RECON", "SPOOFING"}


def test_bad_inputs_exit_2_with_the_culprit_named(run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = run_dir
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--task", "2", "--model", "dnn",
                              "--out", str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2 and "nope: data folder does not exist" in res.output
    bad = tmp_path / "bad.csv"
    synthetic_rows("v2", 3).drop(columns=["Rate"]).to_csv(bad, index=False)
    res = runner.invoke(
        app, ["predict", "--model", str(out), "--input", str(bad), "--output", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 2 and "Missing: ['Rate']" in res.output and "bad.csv" in res.output
    res = runner.invoke(
        app, ["predict", "--model", str(tmp_path), "--input", str(bad), "--output", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 2 and "no bundle.json" in res.output
    res = runner.invoke(app, ["train", "--data", ".", "--task", "7", "--model", "dnn", "--out", "x"])
    assert res.exit_code == 2 and "--task" in res.output


def test_reproduce_writes_comparison(tmp_path: Path) -> None:
    from tests.conftest import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "ds", n_train=60, n_test=20)
    res = runner.invoke(app, ["reproduce", "--data", str(data), "--out", str(tmp_path / "r"), "--models", "dnn,gru_dnn",
                              "--tasks", "2,6", "--preset", "fast", "--epochs", "2", "--quiet", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r" / "comparison.json").read_text())
    rows = result["runs"]
    assert [(r["task"], r["model"]) for r in rows] == [(2, "dnn"), (2, "gru_dnn"), (6, "dnn"), (6, "gru_dnn")]
    # every figure of the README's reproduction tables is in the file, with where it came from
    for r in rows:
        assert 1 <= r["best_epoch"] <= r["epochs"] and 0.0 <= r["best_val_accuracy"] <= 1.0
    prov = result["provenance"]
    assert "reproduce" in prov["command"] and prov["machine"] and prov["date"]
    md = (tmp_path / "r" / "comparison.md").read_text()
    assert "| 6 | gru_dnn |" in md and "best val. acc." in md and "Command:" in md
    assert (tmp_path / "r" / "comparison.png").stat().st_size > 0
    res = runner.invoke(
        app, ["reproduce", "--data", str(data), "--out", str(tmp_path / "r"), "--models", "cnn"]
    )
    assert res.exit_code == 2 and "--models" in res.output
