"""ONNX export of the tree models: preprocessing folded in, ONNX Runtime equal to the bundle within 1e-6.

Rows include the cells the cleaning policy handles (NaN in Std/Variance, +/-inf in the
rate columns) and values far outside the training range. Bundles are fitted on
synthetic rows (always) and on the real sample rows of the export fixtures (when
../shared holds the sample).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'"
)

from iomt_ids.artifacts import ModelBundle, load_bundle  # noqa: E402
from iomt_ids.export.onnx import ONNX_FILE, OnnxScorer, export_onnx, random_raw_rows  # noqa: E402
from iomt_ids.models.compiled import CACHE_ENV  # noqa: E402
from iomt_ids.models.registry import TREE_MODELS  # noqa: E402
from iomt_ids.workflows import fit_bundle  # noqa: E402
from tests.conftest import REPO, synthetic_rows  # noqa: E402

TOL = 1e-6
LABELS = ("Benign", "TCP/IP DDoS SYN", "ARP spoofing", "Recon port scan", "MQTT DDoS connect flood")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "user-cache"))


def _frame(n: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    parts, labels = [], []
    for k, label in enumerate(LABELS):
        part = synthetic_rows("v2", n, label_shift=1.5 * k, seed=k)
        part.loc[part.index[::6], "Rate"] = np.inf
        part.loc[part.index[1::9], "Rate"] = -np.inf
        part.loc[part.index[::5], "Std"] = np.nan
        parts.append(part)
        labels += [label] * n
    return pd.concat(parts, ignore_index=True), np.asarray(labels, dtype=object)


@pytest.fixture(scope="module")
def tree_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """Saved bundles of every tree model, 2 and 6 classes, fitted on synthetic rows with special values."""
    frame, labels = _frame()
    out = {}
    for model in TREE_MODELS:
        for task in (2, 6):
            bundle, _ = fit_bundle(frame, labels, task=task, model=model, seed=0)
            out[(model, task)] = bundle.save(tmp_path_factory.mktemp(f"{model}-{task}"))
    return out


def _rows(bundle: ModelBundle) -> np.ndarray:
    """Raw rows: the training frame, random rows with inf/NaN where allowed, and far-out values."""
    frame, _ = _frame(20)
    raw = frame[list(bundle.input_columns)].to_numpy(dtype=np.float64)
    far = raw[:50] * 1e6
    rows = np.concatenate([raw, random_raw_rows(bundle, 300, seed=1), far])
    assert np.isnan(rows).any() and np.isposinf(rows).any() and np.isneginf(rows).any()
    return rows


def _check(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.array_equal(got.argmax(axis=1), ref.argmax(axis=1))
    assert np.abs(got.astype(np.float64) - ref.astype(np.float64)).max() <= TOL


@pytest.mark.parametrize("task", [2, 6])
@pytest.mark.parametrize("model", TREE_MODELS)
def test_export_equals_bundle_on_raw_rows(
    model: str, task: int, tree_bundles: dict[tuple[str, int], Path], tmp_path: Path
) -> None:
    run = tree_bundles[(model, task)]
    bundle = load_bundle(run)
    path = export_onnx(bundle, tmp_path / ONNX_FILE)
    rows = _rows(bundle)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": rows})[0]  # the raw graph: no NumPy validation in front
    _check(got, bundle.predict_proba(rows))
    _check(OnnxScorer(path, bundle).predict_proba_matrix(rows), bundle.predict_proba(rows))


@pytest.mark.parametrize("model", TREE_MODELS)
def test_graph_interface_and_metadata(
    model: str, tree_bundles: dict[tuple[str, int], Path], tmp_path: Path
) -> None:
    run = tree_bundles[(model, 6)]
    path = export_onnx(run, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "features" and inp.type == "tensor(double)" and inp.shape[1] == 39
    assert isinstance(inp.shape[0], str)  # any batch size
    assert out.name == "probabilities" and out.type == "tensor(float)"
    meta = sess.get_modelmeta().custom_metadata_map
    bundle_meta = json.loads((run / "bundle.json").read_text())
    assert meta["iomt_ids.bundle_version"] == bundle_meta["version"] and meta["iomt_ids.model"] == model
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert {"IsNaN", "IsInf", "Where", "Gather"} <= ops  # the preprocessing is in the graph
    assert ops & {"TreeEnsemble", "TreeEnsembleRegressor"}
    for n in (1, 3):
        p = sess.run(None, {"features": random_raw_rows(run, n)})[0]
        assert p.shape == (n, 6) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("model", TREE_MODELS)
def test_export_on_real_sample_rows(
    model: str,
    bundle_dir: Callable[[str], Path],
    sample_rows: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    """6 classes fitted on real sample rows (with their empty Std and inf Rate cells)."""
    frame, _ = sample_rows
    run = bundle_dir(model)
    bundle = load_bundle(run)
    path = export_onnx(run, tmp_path / ONNX_FILE)
    rows = frame[list(bundle.input_columns)].to_numpy(dtype=np.float64)
    assert np.isnan(rows).any() and np.isinf(rows).any()
    _check(OnnxScorer(path, bundle).predict_proba_matrix(rows), bundle.predict_proba(rows))


def test_cli_export_of_a_tree_bundle(tree_bundles: dict[tuple[str, int], Path], tmp_path: Path) -> None:
    """``iomt-ids export --format onnx`` (a subprocess) writes RUN_DIR/model.onnx and checks parity."""
    import os
    import shutil

    run = Path(shutil.copytree(tree_bundles[("lightgbm", 6)], tmp_path / "run"))
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    cli = "import sys; from iomt_ids.cli import main; sys.argv = ['iomt-ids', *sys.argv[1:]]; main()"
    res = subprocess.run(
        [sys.executable, "-c", cli, "export", "--model", str(run), "--format", "onnx"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (run / ONNX_FILE).is_file() and "parity with the bundle on 256 rows" in res.stdout
    assert float(res.stdout.split("max abs difference")[1].split()[0]) <= TOL
