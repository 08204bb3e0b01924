"""Commands that need an optional extra say which one, and the same way for every command."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from iomt_ids.cli.parsing import warn_if_open


@pytest.mark.parametrize(
    ("command", "what"), [("serve", "the scoring service"), ("dashboard", "the dashboard")]
)
def test_a_missing_extra_is_named_with_the_install_line(tmp_path, command: str, what: str) -> None:
    # uvicorn made unimportable in a real subprocess: the command exits 2 with the extra to install
    code = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['iomt-ids', sys.argv[1], *sys.argv[2:]]; "
        "from iomt_ids.cli import main; main()"
    )
    args = ["--model", str(tmp_path)] if command == "serve" else ["--alerts", str(tmp_path / "a.jsonl")]
    res = subprocess.run([sys.executable, "-c", code, command, *args], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert f"error: {what} needs the 'serve' extra (uvicorn is missing)." in res.stderr
    assert "pip install 'iomt-ids[serve]'" in res.stderr


def test_open_listeners_without_a_key_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="iomt_ids.cli"):
        warn_if_open("127.0.0.1", None, "can score rows")
        warn_if_open("0.0.0.0", "secret", "can score rows")
        assert caplog.records == []
        warn_if_open("0.0.0.0", None, "can score rows")
    assert (
        "listening on 0.0.0.0 without an API key: anyone who can reach the port can score rows."
        in caplog.text
    )
