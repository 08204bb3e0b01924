"""Branch code for tree bundles: compiled at save, bit-identical to the tables, loaded only when trusted.

The safety tests check what a cached code file must never do: be loaded when this
machine did not compile it (flipped bytes, another machine's cache, other weights,
another CPU), and the CLI test runs ``iomt-ids compile`` as a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.models import codegen
from iomt_ids.models.codegen import CODE_ENV, CODE_FILE
from iomt_ids.models.compiled import CACHE_ENV, CompileError, sha256_bytes
from tests.models.test_compiled import MODELS, _assert_parity, _bundle, _sample, _synthetic

pytest.importorskip("llvmlite", reason="branch code needs llvmlite: pip install 'iomt-ids[compiled]'")

#: The CLI in a real subprocess (what the console script runs).
CLI = [
    sys.executable,
    "-c",
    "import sys; from iomt_ids.cli import main; sys.argv = ['iomt-ids', *sys.argv[1:]]; main()",
]
ROWS = 1024  # past codegen.MIN_ROWS: the code path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.delenv(CODE_ENV, raising=False)
    return cache


def _rows(frame: pd.DataFrame, n: int = ROWS) -> pd.DataFrame:
    rows = pd.concat([frame, frame * 1.7, frame * 0.6], ignore_index=True)  # unseen values too
    return rows.iloc[np.arange(n) % len(rows)].reset_index(drop=True)


def _native(bundle: ModelBundle, rows: pd.DataFrame) -> np.ndarray:
    bundle.estimator.use_backend("native")
    try:
        return bundle.predict_proba(rows)
    finally:
        bundle.estimator.use_backend("auto")


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """A 6-class LightGBM bundle saved (code compiled then), its rows and native probabilities."""
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    rows = _rows(frame)
    ref = _native(bundle, rows)
    run = bundle.save(tmp_path / "run")
    assert (run / CODE_FILE).is_file()  # compiled once, when the bundle was saved
    return run, rows, ref


def _code_raw_equals_tables(bundle: ModelBundle, rows: pd.DataFrame) -> None:
    est = bundle.estimator
    tables = est.compiled_tables()
    assert est.branch_code is not None
    x = bundle.transform(rows)
    assert np.array_equal(est.branch_code.raw_scores(x), tables.raw_scores(x))  # bit for bit
    assert np.array_equal(est.predict_proba(x), tables.predict_proba(x))


@pytest.mark.parametrize(("model", "task"), [("lightgbm", 6), ("lightgbm", 2), ("random_forest", 6)])
def test_branch_code_scores_bit_for_bit_like_the_tables(model: str, task: int, tmp_path: Path) -> None:
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, task, model, MODELS[model])
    rows = _rows(frame)
    ref = _native(bundle, rows)
    loaded = load_bundle(bundle.save(tmp_path / "run"))
    _code_raw_equals_tables(loaded, rows)
    _assert_parity(loaded.predict_proba(rows), ref)


def test_branch_code_on_real_sample_rows(sample_dir: Path, tmp_path: Path) -> None:
    """19 classes trained on the real train sample; every real test row: same class as LightGBM, within 1e-6."""
    frame, labels = _sample(sample_dir, "train")
    bundle = _bundle(frame, labels, 19, "lightgbm", MODELS["lightgbm"])
    test, _ = _sample(sample_dir, "test")
    ref = _native(bundle, test)
    loaded = load_bundle(bundle.save(tmp_path / "run"))
    _code_raw_equals_tables(loaded, test)
    got = loaded.predict_proba(test)
    _assert_parity(got, ref)
    assert len(np.unique(got.argmax(axis=1))) > 5


def test_threads_split_rows_without_changing_a_bit(saved: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    run, rows, _ = saved
    bundle = load_bundle(run)
    bundle.estimator.compiled_tables()
    x = np.repeat(bundle.transform(rows), 5, axis=0)  # 5 120 rows: two chunks of more than 2 048
    x[::3, 0] = -0.0  # both zeros
    x[1::3, 0] = 0.0
    code = bundle.estimator.branch_code
    one = code.raw_scores(x, threads=1)
    assert np.array_equal(one, code.raw_scores(x, threads=2))
    assert np.array_equal(one, bundle.estimator.compiled_tables().raw_scores(x))


def test_order_keys_compare_as_the_floats_do() -> None:
    """Every pair (x, threshold): ``x > t`` iff ``key(x) > key(t)``, zeros of both signs and infinities included."""
    f32 = np.float32
    tiny = np.finfo(f32).smallest_subnormal
    values = np.array(
        [-np.inf, -3.4e38, -1.0, -tiny, -0.0, 0.0, tiny, 1e-38, 0.5, 1.0, 3.4e38, np.inf], dtype=f32
    )
    keys = codegen.order_keys(values)
    thr = codegen._threshold_keys(values)
    got = keys[:, None] > thr[None, :]
    assert np.array_equal(got, values[:, None] > values[None, :])


def test_few_rows_score_with_the_tables_and_agree(saved: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    run, rows, ref = saved
    bundle = load_bundle(run)
    for n in (1, 7, codegen.MIN_ROWS - 1, codegen.MIN_ROWS):
        _assert_parity(bundle.predict_proba(rows.iloc[:n]), ref[:n])


# -- the code cache is trusted only where it was compiled -----------------------------------


def _loaded_code(run: Path) -> object:
    bundle = load_bundle(run)
    bundle.estimator.compiled_tables()
    return bundle.estimator.branch_code


def test_second_load_maps_the_cached_code_without_compiling(
    saved: tuple[Path, pd.DataFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, rows, ref = saved

    def no_compile(*args: object, **kwargs: object) -> list[bytes]:
        raise AssertionError("compiled again")

    monkeypatch.setattr(codegen, "compile_objects", no_compile)
    bundle = load_bundle(run)
    _assert_parity(bundle.predict_proba(rows), ref)
    assert bundle.estimator.branch_code is not None


def test_flipped_bytes_are_never_loaded(
    saved: tuple[Path, pd.DataFrame, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    run, rows, ref = saved
    data = bytearray((run / CODE_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / CODE_FILE).write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="iomt_ids.models.codegen"):
        bundle = load_bundle(run)
        _assert_parity(bundle.predict_proba(rows), ref)  # the tables score
    assert bundle.estimator.branch_code is None
    assert "no trust record" in caplog.text and CODE_FILE in caplog.text


def test_code_of_a_copied_bundle_is_not_loaded_until_compiled_here(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, rows, ref = saved
    copy = Path(shutil.copytree(run, tmp_path / "copied"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "other-machine-cache"))  # no trust records there
    assert _loaded_code(copy) is None
    env = {**os.environ, CACHE_ENV: str(tmp_path / "other-machine-cache")}
    done = subprocess.run([*CLI, "compile", "--model", str(copy)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "compiled lightgbm:" in done.stdout and "0/1024" not in done.stdout
    assert "max abs difference 0.00e+00, 1024/1024 same class" in done.stdout
    assert _loaded_code(copy) is not None  # trusted now: compiled on this "machine"
    _assert_parity(load_bundle(copy).predict_proba(rows), ref)
    again = subprocess.run(
        [*CLI, "compile", "--model", str(copy), "--no-check"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert again.returncode == 0 and "is cached" in again.stdout and "compiled lightgbm:" not in again.stdout


def test_code_compiled_for_another_cpu_is_not_loaded(
    saved: tuple[Path, pd.DataFrame, np.ndarray], _private_cache: Path
) -> None:
    run, _, _ = saved
    record_path = _private_cache / "trusted" / sha256_bytes((run / CODE_FILE).read_bytes())
    record = json.loads(record_path.read_text())
    assert record["format"] == codegen.CODE_FORMAT and record["host"]["cpu"]
    record["host"] = {**record["host"], "cpu": "some-other-cpu"}
    record_path.write_text(json.dumps(record))
    assert _loaded_code(run) is None


def test_code_of_other_weights_is_not_loaded(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    """Trusted code moved beside other weights: its record names other weights, so it is never loaded."""
    run, rows, _ = saved
    frame2, labels2 = _synthetic(40)
    other = _bundle(frame2, labels2, 6, "lightgbm", {"num_boost_round": 12})
    ref = _native(other, rows)
    path = other.save(tmp_path / "other")
    shutil.copy(run / CODE_FILE, path / CODE_FILE)
    assert _loaded_code(path) is None
    _assert_parity(load_bundle(path).predict_proba(rows), ref)


def test_tree_code_off_compiles_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CODE_ENV, "off")
    frame, labels = _synthetic()
    run = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"]).save(tmp_path / "run")
    assert not (run / CODE_FILE).exists() and (run / "compiled-trees.npz").is_file()
    monkeypatch.setenv(CODE_ENV, "sometimes")
    with pytest.raises(Exception, match=f"{CODE_ENV} must be 'auto' or 'off'; got 'sometimes'"):
        load_bundle(run).predict_proba(frame)


def test_an_ensemble_too_large_for_code_keeps_the_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    tables = bundle.estimator.compiled_tables()
    monkeypatch.setattr(codegen, "MAX_OPS", 10)
    with pytest.raises(CompileError, match=r"branch operations is over 10"):
        codegen.compile_and_cache(None, "0" * 64, tables, "lightgbm.txt")
    run = bundle.save(tmp_path / "run")
    assert not (run / CODE_FILE).exists()
    _assert_parity(load_bundle(run).predict_proba(frame), _native(bundle, frame))


def test_compile_refuses_a_deep_model_naming_it(tmp_path: Path) -> None:
    from tests.conftest import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "ds", n_train=60, n_test=20)
    run = tmp_path / "dnn"
    train = [*CLI, "train", "--data", str(data), "--task", "2", "--model", "dnn",
             "--epochs", "1", "--out", str(run), "--quiet", "--device", "cpu"]  # fmt: skip
    assert subprocess.run(train, capture_output=True).returncode == 0
    done = subprocess.run([*CLI, "compile", "--model", str(run)], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode != 0
    assert "'dnn', a deep model; branch code is for tree models" in done.stderr
