"""Compiled tree scoring: parity with the native models, the cache in the bundle folder, and its safety.

The parity test runs on real CICIoMT2024 sample rows (19 classes) when ../shared holds
the sample, and on synthetic rows always. The cache tests check what a bundle folder
may and may not make this process do: tables are reused only when this machine built
them (trust record) from these weights; a flipped, planted or copied file is rebuilt,
never used; nothing in the folder is ever loaded as code; the version id ignores it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.labels import classes_for_task
from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.features.schema import columns_for
from iomt_ids.models import compiled
from iomt_ids.models.compiled import CACHE_ENV, CACHE_FILE, STATS, CompileError, TreeTables
from iomt_ids.models.trees import LightGBMEstimator, fit_tree
from iomt_ids.training import get_preset
from tests.conftest import REPO, synthetic_rows

pytest.importorskip(
    "llvmlite", reason="the compiled tree backend needs llvmlite: pip install 'iomt-ids[compiled]'"
)

TOL = 1e-6


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's cache folder (trust records) for the test: a fresh one per test."""
    cache = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def _bundle(
    frame: pd.DataFrame, labels: np.ndarray, task: int, model: str, params: dict, release: str = "v2"
) -> ModelBundle:
    """A tree bundle fitted on ``frame`` (cleaned, unscaled rows, as the pipeline does), 10 % validation."""
    from iomt_ids.workflows.train import encode_labels

    columns = columns_for(release)
    raw = frame[list(columns)].to_numpy(dtype=np.float64)
    y, classes = encode_labels(labels, task)
    val = np.arange(len(y)) % 10 == 0
    pre = Preprocessor(input_columns=columns, scale=False)
    x_tr = pre.fit_transform(raw[~val], source="train")
    x_va = pre.transform(raw[val], source="validation")
    est, _ = fit_tree(model, x_tr, y[~val], x_va, y[val], len(classes), get_preset("paper"), params, False)
    return ModelBundle(estimator=est, preprocessor=pre, classes=classes, task=task, release=release)


def _synthetic(n_per_class: int = 60, task: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    stems = ("Benign", "TCP/IP DDoS SYN", "ARP spoofing", "Recon port scan", "MQTT DDoS connect flood")
    parts, labels = [], []
    for k, label in enumerate(stems):
        part = synthetic_rows("v2", n_per_class, label_shift=1.5 * k, seed=k)
        part.loc[part.index[::7], "Rate"] = np.inf  # the cleaning policy's special values
        part.loc[part.index[::5], "Std"] = np.nan
        parts.append(part)
        labels += [label] * n_per_class
    return pd.concat(parts, ignore_index=True), np.asarray(labels, dtype=object)


def _sample(sample_dir: Path, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    from iomt_ids.data.loader import load_split

    data = load_split(sample_dir / split)
    return data.frame, data.labels


MODELS = {"lightgbm": {"num_boost_round": 30}, "random_forest": {"n_estimators": 20}}


def _backends(bundle: ModelBundle, raw: pd.DataFrame) -> dict[str, np.ndarray]:
    est = bundle.estimator
    out = {}
    for backend in ("native", "compiled"):
        est.use_backend(backend)
        out[backend] = bundle.predict_proba(raw)
    est.use_backend("auto")
    return out


def _assert_parity(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.array_equal(got.argmax(axis=1), ref.argmax(axis=1)), "a row changed class"
    assert np.abs(got.astype(np.float64) - ref.astype(np.float64)).max() <= TOL


@pytest.mark.parametrize("model", list(MODELS))
def test_parity_on_real_sample_rows(model: str, sample_dir: Path, tmp_path: Path) -> None:
    """19 classes, trained on the real train sample; every real test row: same class, probabilities within 1e-6."""
    frame, labels = _sample(sample_dir, "train")
    bundle = _bundle(frame, labels, 19, model, MODELS[model])
    test, _ = _sample(sample_dir, "test")
    test = pd.concat([test, frame[frame["Std"].isna()]], ignore_index=True)  # the sample's empty Std rows
    assert np.isinf(test["Rate"].to_numpy()).any() and test["Std"].isna().any()  # both policies exercised
    got = _backends(bundle, test)
    _assert_parity(got["compiled"], got["native"])
    assert len(np.unique(got["native"].argmax(axis=1))) > 5  # a real 19-class model, not a constant
    from iomt_ids.export.onnx import OnnxScorer, export_onnx

    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'iomt-ids[onnx]'")
    path = export_onnx(bundle.save(tmp_path / "run"), tmp_path / "run" / "model.onnx")
    onnx = OnnxScorer(path, load_bundle(tmp_path / "run")).predict_proba_matrix(
        test[list(bundle.input_columns)].to_numpy(dtype=np.float64)
    )
    _assert_parity(onnx, got["native"])


@pytest.mark.parametrize("task", [2, 6])
@pytest.mark.parametrize("model", list(MODELS))
def test_parity_on_synthetic_rows(model: str, task: int) -> None:
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, task, model, MODELS[model])
    rows = pd.concat([frame, _synthetic(30)[0] * 1.7], ignore_index=True)  # unseen values too
    got = _backends(bundle, rows)
    _assert_parity(got["compiled"], got["native"])
    assert got["native"].shape == (len(rows), task)


def test_threads_split_rows_without_changing_a_bit() -> None:
    frame, labels = _synthetic(400)
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    x = bundle.transform(frame)
    tables = bundle.estimator.compiled_tables()
    assert np.array_equal(tables.predict_proba(x, threads=1), tables.predict_proba(x, threads=2))


def test_rows_the_kernel_would_not_score_exactly_go_to_the_native_model() -> None:
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    est = bundle.estimator
    x = bundle.transform(frame).astype(np.float64) + 1e-9  # float64 values that are not float32 numbers
    assert est._exact_rows(x) is None
    est.use_backend("native")
    ref = est.predict_proba(x)
    est.use_backend("auto")
    assert np.array_equal(est.predict_proba(x), ref)
    x[0, 0] = np.nan
    assert est._exact_rows(x) is None


# -- the cache ---------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """A LightGBM bundle saved (tables compiled at save time), its rows and native probabilities."""
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    bundle.estimator.use_backend("native")
    ref = bundle.predict_proba(frame)
    bundle.estimator.use_backend("auto")
    run = bundle.save(tmp_path / "run")
    assert (run / CACHE_FILE).is_file()  # compiled once, at training (save) time
    return run, frame, ref


def test_second_load_does_not_recompile(saved: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    run, frame, ref = saved
    mtime, built, loaded = (run / CACHE_FILE).stat().st_mtime_ns, STATS["built"], STATS["loaded"]
    for _ in range(2):
        b = load_bundle(run)
        _assert_parity(b.predict_proba(frame), ref)
    assert STATS["built"] == built and STATS["loaded"] == loaded + 2
    assert (run / CACHE_FILE).stat().st_mtime_ns == mtime


def test_version_id_ignores_the_compiled_cache(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    run, frame, _ = saved
    version = json.loads((run / "bundle.json").read_text())["version"]
    plain = load_bundle(run)
    plain.estimator.use_backend("native")
    other = plain.save(tmp_path / "native-only")  # saved without compiling: no cache file
    assert not (other / CACHE_FILE).exists()
    assert json.loads((other / "bundle.json").read_text())["version"] == version
    load_bundle(run).predict_proba(frame)
    assert load_bundle(run).version == version
    assert CACHE_FILE not in json.dumps(json.loads((run / "bundle.json").read_text())["estimator"])


def test_flipped_bytes_are_rejected_and_rebuilt(saved: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    run, frame, ref = saved
    data = bytearray((run / CACHE_FILE).read_bytes())
    for pos in (len(data) // 3, len(data) // 2, len(data) - 40):
        data[pos] ^= 0xFF
    (run / CACHE_FILE).write_bytes(bytes(data))
    built, rejected = STATS["built"], STATS["rejected"]
    _assert_parity(load_bundle(run).predict_proba(frame), ref)
    assert STATS["rejected"] == rejected + 1 and STATS["built"] == built + 1
    assert (run / CACHE_FILE).read_bytes() != bytes(data)  # replaced by a table built here


def _poisoned(tables: TreeTables) -> bytes:
    """Valid tables (they pass every bounds check) that would change every prediction."""
    evil = TreeTables(**{**tables.__dict__, "leaf_values": -tables.leaf_values})
    return evil.validate("poisoned").to_bytes()


def test_valid_but_foreign_tables_are_not_used(saved: tuple[Path, pd.DataFrame, np.ndarray]) -> None:
    """A well-formed table that this machine did not build (no trust record) is rebuilt, not scored with."""
    run, frame, ref = saved
    (run / CACHE_FILE).write_bytes(_poisoned(load_bundle(run).estimator.compiled_tables()))
    rejected = STATS["rejected"]
    _assert_parity(load_bundle(run).predict_proba(frame), ref)
    assert STATS["rejected"] == rejected + 1


def test_a_bundle_copied_from_another_machine_is_recompiled(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, frame, ref = saved
    copy = Path(shutil.copytree(run, tmp_path / "copied"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "other-machine-cache"))  # no trust records there
    built, rejected = STATS["built"], STATS["rejected"]
    _assert_parity(load_bundle(copy).predict_proba(frame), ref)
    assert STATS["rejected"] == rejected + 1 and STATS["built"] == built + 1
    built = STATS["built"]
    load_bundle(copy).predict_proba(frame)  # trusted now: built on this "machine"
    assert STATS["built"] == built


def test_tables_of_other_weights_are_not_used(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    """A trusted table moved beside other weights does not match their hash: rebuilt."""
    run, frame, _ = saved
    frame2, labels2 = _synthetic(40)
    other = _bundle(frame2, labels2, 6, "lightgbm", {"num_boost_round": 12}).save(tmp_path / "other")
    shutil.copy(run / CACHE_FILE, other / CACHE_FILE)
    b = load_bundle(other)
    b.estimator.use_backend("native")
    ref = b.predict_proba(frame)
    rejected = STATS["rejected"]
    _assert_parity(load_bundle(other).predict_proba(frame), ref)
    assert STATS["rejected"] == rejected + 1


CONSTRUCTOR_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("loaded", f); fclose(f); }
}
"""


def test_a_shared_library_in_the_bundle_folder_is_never_loaded(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    """A .so planted in a bundle (no trust record, not built here) is never dlopen'ed: its constructor never runs."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the planted shared library")
    run, frame, ref = saved
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "planted.c"
    src.write_text(CONSTRUCTOR_C.replace("MARKER", json.dumps(str(marker))))
    for name in ("compiled-trees.so", "lightgbm.so", "forest.so", "model.so"):
        subprocess.run([cc, "-shared", "-fPIC", "-o", str(run / name), str(src)], check=True)
    check = (
        f"import ctypes; ctypes.CDLL({str(run / 'compiled-trees.so')!r})"  # loading it runs the constructor
    )
    subprocess.run([sys.executable, "-c", check], check=True)
    assert marker.exists()  # sanity: loading it would be detected
    marker.unlink()
    (run / CACHE_FILE).unlink()  # force a compile too
    _assert_parity(load_bundle(run).predict_proba(frame), ref)
    assert not marker.exists()


def test_no_trust_without_a_private_cache_folder(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache folder others may write to holds no trusted records: tables are rebuilt each time."""
    run, frame, ref = saved
    shared = tmp_path / "shared-cache"
    (shared / "trusted").mkdir(parents=True)
    (shared / "trusted").chmod(0o777)
    monkeypatch.setenv(CACHE_ENV, str(shared))
    built = STATS["built"]
    for _ in range(2):
        _assert_parity(load_bundle(run).predict_proba(frame), ref)
    assert STATS["built"] == built + 2
    assert not list((shared / "trusted").iterdir())


def test_read_only_bundle_folder_caches_in_the_user_cache(
    saved: tuple[Path, pd.DataFrame, np.ndarray], _private_cache: Path
) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run, frame, ref = saved
    (run / CACHE_FILE).unlink()
    run.chmod(0o555)
    try:
        _assert_parity(load_bundle(run).predict_proba(frame), ref)
        assert list((_private_cache / "tables").glob("*.npz"))
    finally:
        run.chmod(0o755)


# -- tables are checked before the kernel follows them ------------------------------------------


def _copy(tables: TreeTables) -> TreeTables:
    return TreeTables(
        **{
            f.name: (v.copy() if isinstance(v, np.ndarray) else v)
            for f in dataclasses.fields(tables)
            for v in [getattr(tables, f.name)]
        }
    )


def test_kernel_arguments_follow_the_tables_arrays() -> None:
    """The cached addresses are recomputed when an array is replaced, and strided arrays are refused."""
    frame, labels = _synthetic()
    bundle = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"])
    x = bundle.transform(frame)
    tables = _copy(bundle.estimator.compiled_tables())
    before = tables.raw_scores(x)
    tables.leaf_values = tables.leaf_values * 2.0  # a new array: the old address must not be reused
    assert np.allclose(tables.raw_scores(x), 2.0 * before, rtol=0, atol=1e-12)
    strided = _copy(tables)
    strided.thr = np.repeat(tables.thr, 2)[::2]
    with pytest.raises(CompileError, match="thr must be contiguous"):
        strided.validate()


def test_out_of_bounds_tables_are_refused() -> None:
    frame, labels = _synthetic()
    tables = _bundle(frame, labels, 6, "lightgbm", MODELS["lightgbm"]).estimator.compiled_tables()
    inner = int(np.flatnonzero(tables.info >= 0)[0])
    cases = {
        "a child lies outside": lambda t: t.info.__setitem__(inner, t.info[inner] | (0x1FFFFF << 10)),
        "a split reads a feature": lambda t: t.info.__setitem__(inner, (t.info[inner] & ~1023) | 1000),
        "a tree root lies outside": lambda t: t.roots.__setitem__(0, t.n_nodes),
        "a leaf index lies outside": lambda t: t.info.__setitem__(
            int(np.flatnonzero(t.info < 0)[0]), -(10**8)
        ),
        "a tree adds to output columns": lambda t: t.tree_out.__setitem__(0, t.n_outputs),
    }
    for why, corrupt in cases.items():
        t = _copy(tables)
        corrupt(t)
        with pytest.raises(CompileError, match=why):
            t.validate()
        with pytest.raises(CompileError, match=f"cache.npz: tree tables are inconsistent: {why}"):
            TreeTables.from_bytes(t.to_bytes(), "cache.npz")
    with pytest.raises(CompileError, match="not tree tables"):
        TreeTables.from_bytes(b"not an npz", "cache.npz")
    arrays = io.BytesIO()
    np.savez(arrays, header=np.frombuffer(b'{"format": "x"}', np.uint8), thr=tables.thr, info=tables.info,
             roots=tables.roots, tree_out=tables.tree_out, leaf_values=tables.leaf_values)  # fmt: skip
    with pytest.raises(CompileError, match="format is not"):
        TreeTables.from_bytes(arrays.getvalue(), "cache.npz")


# -- fallback -------------------------------------------------------------------------------------


def test_unsupported_model_falls_back_to_native_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A LightGBM model with a categorical split has no compiled form: one warning, native scores."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 6, 600), rng.normal(size=600)]).astype(np.float32)
    y = ((x[:, 0] % 2 == 0) ^ (x[:, 1] > 0)).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=10)  # fmt: skip
    est = LightGBMEstimator(booster, 2)
    with caplog.at_level(logging.WARNING, logger="iomt_ids.models.trees"):
        p1, p2 = est.predict_proba(x), est.predict_proba(x[:50])
    warnings = [r for r in caplog.records if "compiled tree scoring unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "categorical" in warnings[0].getMessage()
    est.use_backend("native")
    assert np.array_equal(p1, est.predict_proba(x)) and np.array_equal(p2, est.predict_proba(x[:50]))
    with pytest.raises(CompileError, match="categorical"):
        est.use_backend("compiled").predict_proba(x)


def test_missing_llvmlite_falls_back_to_native_with_one_warning(
    saved: tuple[Path, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    """Without llvmlite (as on an install without the extra) scoring still works, natively, warning once."""
    run, frame, ref = saved
    rows = tmp_path / "rows.npy"
    np.save(rows, frame[list(columns_for("v2"))].to_numpy(dtype=np.float64))
    script = textwrap.dedent(
        f"""
        import logging, sys
        import numpy as np
        sys.modules["llvmlite"] = None  # what 'pip uninstall llvmlite' leaves: the import fails
        sys.modules["llvmlite.binding"] = None
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from iomt_ids.artifacts import load_bundle
        b = load_bundle({str(run)!r})
        x = np.load({str(rows)!r})
        np.save({str(tmp_path / "out.npy")!r}, np.stack([b.predict_proba(x), b.predict_proba(x)]))
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stderr.count("compiled tree scoring unavailable") == 1, res.stderr
    assert "llvmlite" in res.stderr
    out = np.load(tmp_path / "out.npy")
    assert np.array_equal(out[0], ref) and np.array_equal(out[1], ref)


def test_compiled_module_loads_no_code_from_files() -> None:
    """The kernel is built from IR text in the module; nothing in it opens a shared library."""
    source = Path(compiled.__file__).read_text()
    forbidden = ("CDLL(", "LoadLibrary", "dlopen(", "load_library_permanently", "add_object_file",
                 "set_object_cache", "import pickle", "allow_pickle=True")  # fmt: skip
    for call in forbidden:
        assert call not in source, call
    assert compiled.kernel_status() == (True, "")
    assert classes_for_task(19)  # the 19-class task the sample parity test uses
