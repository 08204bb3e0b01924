"""``iomt-ids scan --executor ray`` on a real local Ray cluster: the same bytes as the local executor.

One cluster for the module (``ray.init(num_cpus=2)``), shut down at the end. A task
that kills its own worker process is rerun by Ray (``max_retries``) and the scan is
complete. Skipped only when Ray is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from iomt_ids.workflows.executors import LocalExecutor, RayExecutor, TaskResult, make_executor  # noqa: E402
from iomt_ids.workflows.scan import ScanConfig, ScanResult, run_scan  # noqa: E402

CASES = [
    # (inputs relative to the archive, chunk_packets)
    (["."], 0),  # every capture whole, one task each
    (
        ["big/ward9.pcap", "ward1/sub/mon2.pcapng", "ward2/timeline.pcap.gz"],
        7_000,
    ),  # chunked: joined and whole groups
]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    from ray import cloudpickle

    # this module's helpers travel by value (Ray's workers need not import the tests package)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_results(
    scan_archive: Path, scan_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, ScanResult]:
    """The local executor's scans of every case: the reference for the Ray ones."""
    out = {}
    with LocalExecutor(workers=2) as ex:
        for k, (inputs, chunk) in enumerate(CASES):
            cfg = ScanConfig(model=scan_bundle, out=tmp_path_factory.mktemp(f"local{k}"), chunk_packets=chunk)
            out[k] = run_scan(cfg, [scan_archive / i for i in inputs], executor=ex)
    return out


def outputs(result: ScanResult) -> dict[str, Any]:
    """Every alerts file's bytes and every capture's summary (timings dropped)."""
    got: dict[str, Any] = {}
    for f in result.files:
        assert f.status == "ok", f.error
        assert f.summary is not None and f.alerts_file is not None
        d = f.summary.to_dict()
        for key in ("wall_s", "packets_per_s", "windows_per_s"):
            d.pop(key)
        got[f.rel] = ((Path(result.config.out) / f.alerts_file).read_bytes(), d, f.chunks)
    return got


@pytest.mark.parametrize("case", range(len(CASES)))
def test_ray_scan_equals_local_scan(
    ray_cluster: None,
    scan_archive: Path,
    scan_bundle: Path,
    local_results: dict[int, ScanResult],
    tmp_path: Path,
    case: int,
) -> None:
    inputs, chunk = CASES[case]
    ex = make_executor("ray")  # joins the module's cluster; leaves it running
    assert isinstance(ex, RayExecutor) and ex.workers == 2
    cfg = ScanConfig(model=scan_bundle, out=tmp_path / "out", chunk_packets=chunk, executor="ray")
    result = run_scan(cfg, [scan_archive / i for i in inputs], executor=ex)
    ex.close()
    assert ray.is_initialized()
    want = outputs(local_results[case])
    assert outputs(result) == want
    assert "ray executor" in result.executor
    if chunk:
        assert all(chunks > 1 for _, _, chunks in want.values())


def _die_once(marker: str, fn: Callable[[Any], Any], item: Any) -> Any:
    """Kill this worker process the first time any task gets here (the marker says so), then run ``fn``."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return fn(item)


class CrashOnceExecutor(RayExecutor):
    """A Ray executor whose first task kills its worker; Ray's ``max_retries`` reruns it."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], *, max_in_flight: int | None = None
    ) -> Iterator[TaskResult[Any, Any]]:
        return super().map(partial(_die_once, self.marker, fn), items, max_in_flight=max_in_flight)


def test_killed_worker_is_retried_and_the_scan_is_complete(
    ray_cluster: None,
    scan_archive: Path,
    scan_bundle: Path,
    local_results: dict[int, ScanResult],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "killed-once"
    inputs, chunk = CASES[1]
    cfg = ScanConfig(model=scan_bundle, out=tmp_path / "out", chunk_packets=chunk, executor="ray")
    with CrashOnceExecutor(marker) as ex:
        result = run_scan(cfg, [scan_archive / i for i in inputs], executor=ex)
    assert marker.exists()  # a worker did die
    assert not result.failed
    assert outputs(result) == outputs(local_results[1])


def test_ray_executor_task_errors_are_not_retried(ray_cluster: None) -> None:
    ex = RayExecutor(workers=2)
    got = sorted(ex.map(int, ["7", "seven"]), key=lambda r: r.index)
    assert got[0].value == 7
    assert isinstance(got[1].error, ValueError) and "seven" in str(got[1].error)


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from iomt_ids.exceptions import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"install the ray extra: pip install 'iomt-ids\[ray\]'"):
        make_executor("ray")
