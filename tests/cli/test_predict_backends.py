"""``iomt-ids predict --backend native|compiled|onnx|auto`` (and the ``torch`` alias) on tree bundles.

Each backend runs as its own ``iomt-ids`` process on the same CSV of raw rows (with the
empty Std and infinite Rate cells the cleaning policy handles); the output CSVs must name
the same class for every row and give probabilities within 1e-6.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from iomt_ids.models.compiled import CACHE_ENV
from tests.conftest import REPO, write_synthetic_dataset

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'")
pytest.importorskip(
    "llvmlite", reason="the compiled tree backend needs llvmlite: pip install 'iomt-ids[compiled]'"
)

TOL = 1e-6
_CLI = "import sys; from iomt_ids.cli import main; sys.argv = ['iomt-ids', *sys.argv[1:]]; main()"


def _cli(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *map(str, args)], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Path], Path, dict[str, str]]]:
    """A LightGBM and a forest RUN_DIR (each with model.onnx), a CSV of raw rows, the environment."""
    from iomt_ids.export.onnx import ONNX_FILE, export_onnx
    from iomt_ids.workflows import RunConfig, train_run

    root = tmp_path_factory.mktemp("backends")
    env = {**os.environ, CACHE_ENV: str(root / "user-cache")}
    data = write_synthetic_dataset(root / "ds", n_train=80, n_test=30)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, env[CACHE_ENV])  # training here writes its trust records where the CLI looks
        for model in ("lightgbm", "random_forest"):
            run = root / model
            train_run(RunConfig(data=data, task=6, model=model, out=run, preset="paper", progress=False))
            export_onnx(run, run / ONNX_FILE)
            out[model] = run
    frames = [pl.read_csv(p) for p in sorted((data / "test").glob("*.csv"))]
    rows = pl.concat(frames)
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(float("inf")).otherwise(pl.col("Rate")).alias("Rate"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("Std")).alias("Std"),
    )
    csv = root / "rows.csv"
    rows.write_csv(csv)
    yield out, csv, env


@pytest.mark.parametrize(
    ("model", "backends"),
    [
        ("lightgbm", ("native", "compiled", "onnx", "auto", "torch")),
        ("random_forest", ("native", "compiled", "onnx")),
    ],
)
def test_every_backend_gives_the_same_predictions(
    model: str, backends: tuple[str, ...], runs: tuple[dict[str, Path], Path, dict[str, str]], tmp_path: Path
) -> None:
    paths, csv, env = runs
    outputs = {}
    for backend in backends:
        out = tmp_path / f"{backend}.csv"
        res = _cli(
            env, "predict", "--model", paths[model], "--input", csv, "--output", out, "--backend", backend
        )
        assert res.returncode == 0, f"{backend}: {res.stderr}"
        assert "unavailable" not in res.stderr  # no fallback happened
        outputs[backend] = pl.read_csv(out)
    ref = outputs["native"]
    assert ref.height == pl.read_csv(csv).height > 0
    p_cols = [c for c in ref.columns if c.startswith("p_")]
    for backend, got in outputs.items():
        assert got["predicted_class"].to_list() == ref["predicted_class"].to_list(), backend
        diff = np.abs(got.select(p_cols).to_numpy() - ref.select(p_cols).to_numpy()).max()
        assert diff <= TOL, (backend, diff)
    if "torch" in outputs:
        assert outputs["torch"].equals(ref)  # the alias is the native backend


def test_auto_uses_the_compiled_kernel_and_says_so(
    runs: tuple[dict[str, Path], Path, dict[str, str]], tmp_path: Path
) -> None:
    paths, csv, env = runs
    res = _cli(env, "predict", "--model", paths["lightgbm"], "--input", csv, "--output", tmp_path / "a.csv")
    assert res.returncode == 0, res.stderr
    assert "scoring with the compiled tree backend" in res.stderr


def test_compiled_backend_on_a_deep_model_is_an_error(tmp_path: Path) -> None:
    from iomt_ids.workflows import fit_bundle
    from tests.conftest import synthetic_rows

    frame = synthetic_rows("v2", 40)
    labels = np.asarray(["Benign", "ARP spoofing"] * 20, dtype=object)
    bundle, _ = fit_bundle(frame, labels, task=2, model="dnn", epochs=1, device="cpu")
    run = bundle.save(tmp_path / "dnn")
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    res = _cli(
        env,
        "predict",
        "--model",
        run,
        "--input",
        csv,
        "--output",
        tmp_path / "o.csv",
        "--backend",
        "compiled",
    )
    assert res.returncode == 2
    assert "--backend compiled applies to tree models" in res.stderr and "use native or onnx" in res.stderr
    res = _cli(
        env, "predict", "--model", run, "--input", csv, "--output", tmp_path / "o.csv", "--backend", "gpu"
    )
    assert res.returncode == 2 and "--backend" in res.stderr
