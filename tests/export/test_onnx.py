"""ONNX export of the deep models: graph interface, parity with PyTorch, predict's backends, the CLI.

The tree models' export is tested in ``test_onnx_trees.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'"
)

from typer.testing import CliRunner  # noqa: E402

from iomt_ids.cli import _register, app  # noqa: E402
from iomt_ids.exceptions import BadValueError, BundleError, ConfigError  # noqa: E402
from iomt_ids.export.onnx import ONNX_FILE, OnnxScorer, export_onnx, parity, random_raw_rows  # noqa: E402
from iomt_ids.scoring import predict_csv  # noqa: E402


@pytest.fixture(scope="module")
def exported(bundle_dir: Callable[[str], Path]) -> Path:
    """gru_dnn bundle with model.onnx written into its RUN_DIR."""
    run_dir = bundle_dir("gru_dnn")
    export_onnx(run_dir, run_dir / ONNX_FILE)
    return run_dir


def test_graph_interface(exported: Path) -> None:
    sess = ort.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "features" and inp.type == "tensor(double)"
    assert out.name == "probabilities"
    assert isinstance(inp.shape[0], str) and inp.shape[1] == 39  # dynamic batch axis, v2 columns
    meta = sess.get_modelmeta().custom_metadata_map
    bundle_meta = json.loads((exported / "bundle.json").read_text())
    assert meta["iomt_ids.bundle_version"] == bundle_meta["version"]
    assert json.loads(meta["iomt_ids.classes"]) == bundle_meta["classes"]
    for n in (1, 7, 1000):  # any batch size
        p = sess.run(None, {"features": random_raw_rows(exported, n)})[0]
        assert p.shape == (n, 6)
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_parity_on_real_sample(exported: Path, sample_rows: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, _ = sample_rows
    assert parity(exported, exported / ONNX_FILE, frame) <= 1e-5


def test_parity_on_inf_and_nan_rows(exported: Path) -> None:
    rows = random_raw_rows(exported, 500, seed=3)
    assert np.isinf(rows).any() and np.isnan(rows).any()
    assert parity(exported, exported / ONNX_FILE, rows) <= 1e-5


@pytest.mark.parametrize("model", ["dnn", "lstm_dnn"])
def test_export_other_models(model: str, bundle_dir: Callable[[str], Path], tmp_path: Path) -> None:
    out = export_onnx(bundle_dir(model), tmp_path / "m.onnx", dynamo=False)
    assert parity(bundle_dir(model), out, random_raw_rows(bundle_dir(model), 300)) <= 1e-5


def test_onnx_scorer_rejects_bad_values_like_the_bundle(exported: Path) -> None:
    scorer = OnnxScorer(exported / ONNX_FILE)
    rows = random_raw_rows(exported, 10)
    rows[4, scorer.input_columns.index("Header_Length")] = np.inf
    with pytest.raises(BadValueError, match="'Header_Length' is infinite in 1 row"):
        scorer.predict_proba_matrix(rows)


def test_scorer_refuses_export_of_another_bundle(
    exported: Path, bundle_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    from iomt_ids.artifacts import load_bundle

    with pytest.raises(BundleError, match="export' again"):
        OnnxScorer(exported / ONNX_FILE, load_bundle(bundle_dir("dnn")))


def test_predict_backends_agree(exported: Path, sample_dir: Path, tmp_path: Path) -> None:
    src = sample_dir / "test" / "Recon-Ping_Sweep_test.pcap.csv"
    n_onnx = predict_csv(exported, src, tmp_path / "onnx.csv", backend="onnx")
    n_torch = predict_csv(exported, src, tmp_path / "torch.csv", backend="torch")
    a, b = pl.read_csv(tmp_path / "onnx.csv"), pl.read_csv(tmp_path / "torch.csv")
    assert n_onnx == n_torch == a.height > 0
    assert a["predicted_class"].to_list() == b["predicted_class"].to_list()
    p_cols = [c for c in a.columns if c.startswith("p_")]
    assert np.abs(a.select(p_cols).to_numpy() - b.select(p_cols).to_numpy()).max() <= 1e-5


def test_native_is_torch_and_compiled_needs_trees(exported: Path, sample_dir: Path, tmp_path: Path) -> None:
    src = sample_dir / "test" / "Recon-Ping_Sweep_test.pcap.csv"
    predict_csv(exported, src, tmp_path / "native.csv", backend="native")
    predict_csv(exported, src, tmp_path / "torch.csv", backend="torch")
    assert pl.read_csv(tmp_path / "native.csv").equals(pl.read_csv(tmp_path / "torch.csv"))
    with pytest.raises(ConfigError, match="--backend compiled applies to tree models"):
        predict_csv(exported, src, tmp_path / "c.csv", backend="compiled")


def test_predict_onnx_backend_needs_an_export(
    bundle_dir: Callable[[str], Path], sample_dir: Path, tmp_path: Path
) -> None:
    src = sample_dir / "test" / "Recon-Ping_Sweep_test.pcap.csv"
    with pytest.raises(ConfigError, match="iomt-ids export"):
        predict_csv(bundle_dir("lstm_dnn"), src, tmp_path / "o.csv", backend="onnx")
    with pytest.raises(ConfigError, match="backend must be one of"):
        predict_csv(bundle_dir("lstm_dnn"), src, tmp_path / "o.csv", backend="tensorrt")


def test_cli_export_and_predict(bundle_dir: Callable[[str], Path], sample_dir: Path, tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    run_dir = bundle_dir("dnn")
    out = tmp_path / "dnn.onnx"
    res = runner.invoke(app, ["export", "--model", str(run_dir), "--format", "onnx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "max abs difference" in res.output
    diff = float(res.output.split("max abs difference")[1].split()[0])
    assert diff <= 1e-5
    res = runner.invoke(app, ["export", "--model", str(tmp_path / "nowhere"), "--out", str(out)])
    assert res.exit_code == 2 and "does not exist" in res.output
    src = sample_dir / "test" / "Recon-VulScan_test.pcap.csv"
    res = runner.invoke(
        app, ["predict", "--model", str(run_dir), "--input", str(src), "--output", str(tmp_path / "p.csv")]
    )
    assert res.exit_code == 0, res.output
    assert pl.read_csv(tmp_path / "p.csv").height == int(res.output.split()[1])


def test_scorer_chunks_large_inputs(exported: Path) -> None:
    rows = random_raw_rows(exported, 50, seed=5)
    whole = OnnxScorer(exported / ONNX_FILE).predict_proba_matrix(rows)
    chunked = OnnxScorer(exported / ONNX_FILE, batch_size=7).predict_proba_matrix(rows)
    assert chunked.shape == (50, 6)
    assert np.array_equal(whole, chunked)


def test_export_is_one_file_without_a_stale_data_file(
    bundle_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    run_dir = bundle_dir("dnn")
    out = tmp_path / "x" / ONNX_FILE
    export_onnx(run_dir, out)
    assert sorted(p.name for p in out.parent.iterdir()) == [ONNX_FILE]
    assert parity(run_dir, out, random_raw_rows(run_dir, 64)) < 1e-4
