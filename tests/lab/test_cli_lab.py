"""``iomt-ids lab list`` / ``lab run`` through the real CLI (no root needed for these)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from iomt_ids.data.labels import STEM_TO_CLASS19

_register()
runner = CliRunner()


def test_lab_list_shows_every_scenario_with_its_tool() -> None:
    result = runner.invoke(app, ["lab", "list", "--seconds", "10"])
    assert result.exit_code == 0, result.output
    for stem in STEM_TO_CLASS19:
        assert f"{stem}  [" in result.output
    assert "hping3 -q -n -S -p 1883 -i u500 -c 20000 10.77.0.10" in result.output
    assert "arpspoof -i eth0 -t 10.77.0.21 -r 10.77.0.10" in result.output


def test_lab_run_unknown_scenario_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(
        app, ["lab", "run", "--out", str(tmp_path), "--scenarios", "Nope", "--seconds", "2"]
    )
    assert result.exit_code == 2
    assert "unknown lab scenario(s) ['Nope']" in result.output


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to nobody"
)
def test_lab_run_as_non_root_says_it_needs_root(tmp_path) -> None:
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "from iomt_ids.lab.netns import check_environment; check_environment()"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "the traffic lab needs root" in out.stderr
