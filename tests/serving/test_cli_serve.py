"""`iomt-ids serve` through Typer's CliRunner (the real server run is in test_uvicorn.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app

runner = CliRunner()
_register()


def test_help_lists_the_options() -> None:
    res = runner.invoke(app, ["serve", "--help"])
    assert res.exit_code == 0
    for option in (
        "--model",
        "--host",
        "--port",
        "--api-key",
        "IOMT_IDS_API_KEY",
        "--max-rows",
        "--cors-origin",
    ):
        assert option in res.output


def test_missing_serve_extra_exits_2_with_the_pip_command(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what an install without the extra looks like
    res = runner.invoke(app, ["serve", "--model", str(bundle_dir)])
    assert res.exit_code == 2
    assert "pip install 'iomt-ids[serve]'" in res.output
    assert "uvicorn" in res.output


def test_model_folder_must_exist(tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2
    flat = " ".join(res.output.replace("│", " ").split())
    assert "'--model'" in flat and "does not exist" in flat


def test_folder_without_bundle_exits_2_naming_it(tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--model", str(tmp_path)])
    assert res.exit_code == 2
    assert "bundle.json" in res.output and str(tmp_path) in res.output


def test_invalid_limit_exits_2_naming_the_setting(bundle_dir: Path) -> None:
    res = runner.invoke(app, ["serve", "--model", str(bundle_dir), "--max-rows", "2000000"])
    assert res.exit_code == 2
    assert "max_rows" in res.output
