"""The thread policy and the provenance helpers of :mod:`iomt_ids.runtime`, on this real machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iomt_ids.exceptions import ConfigError
from iomt_ids.runtime import THREADS_ENV, choose_threads, cpu_model, git_commit, usable_cpus

REPO = Path(__file__).resolve().parents[1]


def test_explicit_request_is_obeyed_even_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    p = choose_threads(3, cap=1)
    assert (p.threads, p.source) == (3, "option")
    assert "from --threads" in p.describe()


def test_environment_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "2")
    assert (choose_threads().threads, choose_threads().source) == (2, "environment")
    monkeypatch.setenv(THREADS_ENV, "0")  # 0: automatic
    auto = choose_threads()
    assert auto.source == "auto" and 1 <= auto.threads <= usable_cpus()
    assert choose_threads(cap=1).threads == 1
    assert f"{auto.usable_cpus} usable CPUs" in auto.describe()


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(ConfigError, match=THREADS_ENV):
        choose_threads()


def test_negative_request_is_refused() -> None:
    with pytest.raises(ConfigError, match="--threads must be >= 0"):
        choose_threads(-2)


@pytest.mark.skipif(
    shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"), reason="needs taskset"
)
def test_usable_cpus_follows_the_affinity_mask() -> None:
    code = "from iomt_ids.runtime import usable_cpus, choose_threads; print(usable_cpus(), choose_threads().threads)"
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.split()  # fmt: skip
    assert out == ["1", "1"]  # one CPU allowed: one usable, one thread chosen


def test_provenance_helpers(tmp_path: Path) -> None:
    assert cpu_model() and cpu_model() != "unknown"
    if shutil.which("git") and (REPO / ".git").exists():
        commit = git_commit(REPO)
        assert commit is not None and re.fullmatch(r"[0-9a-f]{7,40}", commit)
    assert git_commit(tmp_path) is None  # not a checkout
