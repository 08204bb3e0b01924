"""Argument errors: answered before heavy imports, and naming the real cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from tests.conftest import synthetic_rows, write_synthetic_dataset

runner = CliRunner()
_register()

HEAVY = ("torch", "polars", "lightgbm", "matplotlib")

# Runs the real CLI, then prints which heavy modules got imported (also after SystemExit).
_WRAPPER = (
    "import sys\n"
    "from iomt_ids.cli import main\n"
    "sys.argv = ['iomt-ids', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    f"    print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WRAPPER, *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clierr")
    data = write_synthetic_dataset(root / "ds", n_train=40, n_test=10)
    out = root / "run"
    res = runner.invoke(
        app, ["train", "--data", str(data), "--task", "2", "--model", "dnn", "--preset", "fast",
              "--epochs", "1", "--out", str(out), "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _fake_run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "bundle.json").write_text("{}")
    return run


def _argument_errors(tmp_path: Path) -> list[tuple[list[str | Path], str]]:
    """(arguments, text the error must hold) for each command; none gets as far as the library."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    run = _fake_run_dir(tmp_path)
    rows = tmp_path / "rows.csv"
    synthetic_rows("v2", 2).to_csv(rows, index=False)
    data = tmp_path / "data"
    data.mkdir()
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    train = ["train", "--task", "2", "--model", "dnn"]
    return [
        (
            [*train, "--data", "/nonexistent", "--out", tmp_path / "o"],
            "/nonexistent: data folder does not exist",
        ),
        ([*train, "--data", a_file, "--out", tmp_path / "o"], "a_file: expected a folder, got a file"),
        ([*train, "--data", data, "--out", a_file / "sub"], "a_file is a file"),
        ([*train, "--data", data, "--out", tmp_path / "o", "--feature-set", "tiny"], "'tiny'"),
        ([*train, "--data", data, "--out", tmp_path / "o", "--protocol", "nope"], "'nope'"),
        ([*train, "--data", data, "--out", tmp_path / "o", "--device", "gpu"], "'gpu'"),
        (["evaluate", "--model", "/nonexistent", "--data", data, "--out", tmp_path / "e"], "/nonexistent"),
        (["evaluate", "--model", run, "--data", tmp_path / "missing", "--out", tmp_path / "e"], "missing"),
        (["predict", "--model", a_file, "--input", rows, "--output", tmp_path / "p.csv"], "is a file"),
        (
            ["predict", "--model", run, "--input", tmp_path / "nope.csv", "--output", tmp_path / "p.csv"],
            "nope.csv",
        ),
        (
            ["predict", "--model", run, "--input", rows, "--output", "/nonexistent/dir/p.csv"],
            "/nonexistent/dir",
        ),
        (["predict", "--model", run, "--input", capture, "--output", tmp_path / "p.csv"], "iomt-ids extract"),
        (["extract", capture, "--output", "/nonexistent/dir/f.csv"], "/nonexistent/dir"),
        (["export", "--model", "/nonexistent"], "/nonexistent"),
        (["export", "--model", a_file], "is a file"),
        (["reproduce", "--data", "/nonexistent", "--out", tmp_path / "r"], "/nonexistent"),
    ]


def test_argument_errors_exit_2_before_heavy_imports(tmp_path: Path) -> None:
    for args, expected in _argument_errors(tmp_path):
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "error:" in res.stderr and expected in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr, (args, res.stderr)
        heavy = res.stderr.split("HEAVY", 1)[1]
        assert heavy.strip() == "[]", (args, heavy)
    assert not (tmp_path / "o").exists() and not Path("/nonexistent").exists()


def test_cli_copies_of_choices_match_the_library() -> None:
    from iomt_ids.cli.options import FEATURE_SETS, PROTOCOLS
    from iomt_ids.data.protocols import PROTOCOLS as LIB_PROTOCOLS
    from iomt_ids.features.feature_sets import FEATURE_SETS as LIB_FEATURE_SETS

    assert FEATURE_SETS == LIB_FEATURE_SETS and PROTOCOLS == LIB_PROTOCOLS


def _predict(run: Path, src: Path, dst: Path) -> object:
    return runner.invoke(app, ["predict", "--model", str(run), "--input", str(src), "--output", str(dst)])


def test_predict_refuses_a_missing_output_folder(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    synthetic_rows("v2", 3).to_csv(src, index=False)
    res = _predict(run_dir, src, tmp_path / "no" / "such" / "p.csv")
    assert res.exit_code == 2 and "does not exist; create it first" in res.output
    assert not (tmp_path / "no").exists()
    res = _predict(run_dir, src, tmp_path)
    assert res.exit_code == 2 and "is a folder" in res.output
    from iomt_ids.exceptions import ConfigError
    from iomt_ids.scoring import predict_csv

    with pytest.raises(ConfigError, match="create it first"):
        predict_csv(run_dir, src, tmp_path / "no" / "p.csv")
    assert not (tmp_path / "no").exists()


def test_predict_model_given_a_file(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    synthetic_rows("v2", 3).to_csv(src, index=False)
    res = _predict(run_dir / "bundle.json", src, tmp_path / "p.csv")
    assert res.exit_code == 2 and "bundle.json: is a file; expected a RUN_DIR folder" in res.output
    assert "does not exist" not in res.output


def test_predict_names_the_real_cause_of_an_unreadable_input(run_dir: Path, tmp_path: Path) -> None:
    semi = tmp_path / "semi.csv"
    synthetic_rows("v2", 3).to_csv(semi, index=False, sep=";")
    res = _predict(run_dir, semi, tmp_path / "p.csv")
    assert res.exit_code == 2 and "semi.csv" in res.output and "semicolon-separated" in res.output
    assert "Missing" not in res.output
    for name, magic, kind in (
        ("a.pcap", b"\xd4\xc3\xb2\xa1", "pcap"),
        ("b.pcap", b"\xa1\xb2\xc3\xd4", "pcap"),
        ("c.pcapng", b"\x0a\x0d\x0d\x0a", "pcapng"),
    ):
        cap = tmp_path / name
        cap.write_bytes(magic + b"\x1c\x00\x00\x00\x4d\x3c\x2b\x1a" + bytes(32))
        res = _predict(run_dir, cap, tmp_path / "p.csv")
        assert res.exit_code == 2, res.output
        assert f"{name}: this is a capture ({kind})" in res.output and "iomt-ids extract" in res.output
        assert "Missing" not in res.output
    assert not (tmp_path / "p.csv").exists()


def test_predict_warns_about_a_header_only_csv(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "empty.csv"
    synthetic_rows("v2", 0).to_csv(src, index=False)
    res = _predict(run_dir, src, tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "no data rows" in res.output and "scored 0 rows" in res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 0 and "predicted_class" in pred.columns
