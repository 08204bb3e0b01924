"""``iomt-ids scan`` with the local executor: every capture equals ``detect`` on it, bit for bit.

Real components only: a trained bundle (and a site bundle), real worker processes,
captures built with dpkt plus the lab captures shipped in the package. The reference
of every comparison is :func:`run_detection` over the whole file in this process, with
one torch thread as ``iomt-ids detect`` runs it, writing a JSON-lines file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iomt_ids.detection import DetectConfig, JsonLinesSink, PcapSource, run_detection
from iomt_ids.detection.site import load_detector
from iomt_ids.exceptions import ConfigError
from iomt_ids.workflows.executors import LocalExecutor, TaskResult
from iomt_ids.workflows.scan import ScanConfig, ScanResult, find_captures, run_scan
from tests.workflows.conftest import synthetic_packets, write_pcap

REPO = Path(__file__).resolve().parents[2]
#: the files of the ``scan_archive`` fixture (README.txt is not a capture)
ARCHIVE_FILES = [
    "Benign_lab.pcap",
    "big/ward9.pcap",
    "ward1/mon1.pcap",
    "ward1/sub/mon2.pcapng",
    "ward2/mon3-copy.pcap.gz",
    "ward2/mon3.pcap",
    "ward2/timeline.pcap.gz",
]
#: the ``iomt-ids`` console entry point, in a fresh interpreter
CLI = "import sys; from iomt_ids.cli import main; sys.argv[0] = 'iomt-ids'; main()"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Any:
    """The reference runs as ``iomt-ids detect`` does: one torch thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local() -> Any:
    """One pool of 2 workers for the module (spawning workers that import torch takes seconds)."""
    with LocalExecutor(workers=2) as ex:
        yield ex


def reference(
    path: Path, model: Path, out: Path, config: DetectConfig | None = None, **kw: Any
) -> tuple[bytes, dict]:
    """What ``iomt-ids detect --pcap path --alerts out`` writes, and its summary (timings dropped)."""
    det = load_detector(model, **kw)
    sink = JsonLinesSink(out, append=False)
    summary = run_detection(PcapSource(path), det, [sink], config or DetectConfig())
    sink.close()
    return out.read_bytes(), comparable(summary.to_dict())


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("source", "wall_s", "packets_per_s", "windows_per_s")}


def scanned(result: ScanResult, rel: str) -> tuple[bytes, dict]:
    f = next(f for f in result.files if f.rel == rel)
    assert f.status == "ok", f.error
    assert f.summary is not None and f.alerts_file is not None
    return (Path(result.config.out) / f.alerts_file).read_bytes(), comparable(f.summary.to_dict())


def alert_lines(eve: bytes) -> list[dict]:
    return [e for e in map(json.loads, eve.decode().splitlines()) if e["event_type"] == "alert"]


def test_archive_scan_equals_detect_per_file(
    scan_archive: Path, scan_bundle: Path, local: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_scan(ScanConfig(model=scan_bundle, out=out, chunk_packets=0), [scan_archive], executor=local)
    assert [f.rel for f in result.files] == ARCHIVE_FILES
    assert not result.failed
    for rel in ARCHIVE_FILES:
        got = scanned(result, rel)
        want = reference(scan_archive / rel, scan_bundle, tmp_path / "ref.jsonl")
        assert got[0] == want[0], rel
        assert got[1] == want[1], rel
    assert (out / "alerts" / "ward1" / "sub" / "mon2.pcapng.eve.json").is_file()  # mirrors the relative path
    assert sum(len(alert_lines(scanned(result, rel)[0])) for rel in ARCHIVE_FILES) > 0

    # the summary: one row per capture plus TOTAL, in CSV and JSON, counts that add up
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["file"] for r in rows] == [*ARCHIVE_FILES, "TOTAL"]
    data = json.loads((out / "summary.json").read_text())
    files = {f["file"]: f for f in data["files"]}
    assert files["big/ward9.pcap"]["detect"]["packets"] == 150_000
    total = rows[-1]
    for key, jkey in (("packets", "packets"), ("windows", "windows"), ("alerts", "alerts_raw")):
        assert int(total[key]) == sum(f["detect"][jkey] for f in data["files"]) == data["total"][jkey]
    for cat, n in data["total"]["categories"].items():
        assert int(total[cat]) == n == sum(int(r[cat]) for r in rows[:-1])
    assert data["model"]["version"] == load_detector(scan_bundle).model_version


CHUNK_CASES = [
    # (capture, chunk_packets, windows); big/ward9.pcap: 150,000 packets, read in batches of 65,536
    ("big/ward9.pcap", 1_000, (10, 100)),  # every batch cut in many chunks: all windows scored here
    ("big/ward9.pcap", 50_000, (10, 100)),  # boundaries inside and between batches; the last batch whole
    ("big/ward9.pcap", 65_536, (7, 50)),  # chunks of whole batches, scored by the workers; other windows
    ("ward1/sub/mon2.pcapng", 1_000, (10, 100)),  # link types alternate: a batch every 300 packets
    ("ward2/timeline.pcap.gz", 1_000, (10, 100)),  # real lab traffic, gzip (this model finds no attack in it)
]


@pytest.mark.parametrize(("rel", "chunk", "windows"), CHUNK_CASES)
def test_chunked_scan_equals_single_run(
    scan_archive: Path,
    scan_bundle: Path,
    local: Any,
    tmp_path: Path,
    rel: str,
    chunk: int,
    windows: tuple[int, ...],
) -> None:
    path = scan_archive / rel
    config = ScanConfig(model=scan_bundle, out=tmp_path / "out", chunk_packets=chunk, windows=windows)
    result = run_scan(config, [path], executor=local)
    want = reference(path, scan_bundle, tmp_path / "ref.jsonl", DetectConfig(windows=windows))
    got = scanned(result, path.name)
    assert result.files[0].chunks == math.ceil(want[1]["packets"] / chunk) > 1
    assert got[0] == want[0]
    assert got[1] == want[1]
    if "timeline" not in rel:  # the synthetic floods: alerts, folded summaries and stats lines were stitched
        events = alert_lines(got[0])
        assert len(events) > 2 and any(e["alert"].get("summary") for e in events)


@pytest.mark.parametrize(("rel", "chunk"), [("big/ward9.pcap", 50_000), ("ward2/timeline.pcap.gz", 1_000)])
def test_chunked_scan_with_a_site_detector(
    scan_archive: Path, scan_site: Path, local: Any, tmp_path: Path, rel: str, chunk: int
) -> None:
    """A site bundle gates alerts on novelty and on persistence over earlier windows (state across chunks)."""
    path = scan_archive / rel
    result = run_scan(
        ScanConfig(model=scan_site, out=tmp_path / "out", chunk_packets=chunk), [path], executor=local
    )
    want = reference(path, scan_site, tmp_path / "ref.jsonl")
    got = scanned(result, path.name)
    assert result.files[0].chunks > 1
    assert got == want
    assert got[1]["site_adapted"] and got[1]["novel_windows"] > 0
    assert any("novelty" in e["alert"] for e in alert_lines(got[0]))


def test_chunked_scan_strict_unfolded_unexplained(
    scan_archive: Path, scan_bundle: Path, local: Any, tmp_path: Path
) -> None:
    path = scan_archive / "ward1" / "mon1.pcap"
    config = ScanConfig(model=scan_bundle, out=tmp_path / "out", chunk_packets=2_500, fold_seconds=0, eve="strict",
                        explain=False, threshold=0.7)  # fmt: skip
    result = run_scan(config, [path], executor=local)
    want = reference(path, scan_bundle, tmp_path / "ref.jsonl", DetectConfig(fold_seconds=0), threshold=0.7,
                     explain=False, eve_strict=True)  # fmt: skip
    assert result.files[0].chunks == 5
    assert scanned(result, "mon1.pcap") == want


def test_find_captures(scan_archive: Path, tmp_path: Path) -> None:
    assert [c.rel for c in find_captures([scan_archive])] == ARCHIVE_FILES
    assert [c.rel for c in find_captures([str(scan_archive / "ward2" / "*.gz")])] == [
        "mon3-copy.pcap.gz",
        "timeline.pcap.gz",
    ]
    assert [c.rel for c in find_captures([str(scan_archive / "**" / "mon*.pcap*")])] == [
        "ward1/mon1.pcap",
        "ward1/sub/mon2.pcapng",
        "ward2/mon3-copy.pcap.gz",
        "ward2/mon3.pcap",
    ]
    assert [c.rel for c in find_captures([scan_archive / "ward1" / "mon1.pcap"])] == ["mon1.pcap"]
    with pytest.raises(ConfigError, match=r"no captures matched: searched glob '.*\*\.pcapx'"):
        find_captures([str(scan_archive / "*.pcapx")])
    with pytest.raises(ConfigError, match="no such file or folder"):
        find_captures([tmp_path / "missing.pcap"])


def test_find_captures_collision(scan_archive: Path, tmp_path: Path) -> None:
    other = tmp_path / "mon3.pcap"
    shutil.copy(scan_archive / "ward2" / "mon3.pcap", other)
    with pytest.raises(ConfigError, match="same relative path 'mon3.pcap'"):
        find_captures([scan_archive / "ward2" / "mon3.pcap", other])


def test_scan_config_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chunk_packets"):
        ScanConfig(model=tmp_path, out=tmp_path, chunk_packets=-1)
    with pytest.raises(ConfigError, match="eve"):
        ScanConfig(model=tmp_path, out=tmp_path, eve="loose")
    with pytest.raises(ConfigError, match="windows"):
        ScanConfig(model=tmp_path, out=tmp_path, windows=(10, 10))


def _die_once(marker: str) -> int:
    """Kill this worker process the first time (the marker file says it happened), then return its pid."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


def test_local_executor_results_errors_retries_and_threads(tmp_path: Path) -> None:
    with LocalExecutor(workers=2, max_retries=2) as ex:
        # as they finish, each with its index; fn's own errors come back, not retried
        got = sorted(ex.map(int, ["1", "x", "3"]), key=lambda r: r.index)
        assert [r.value for r in got] == [1, None, 3]
        assert isinstance(got[1].error, ValueError) and got[1].attempts == 1
        with pytest.raises(ValueError):
            got[1].get()
        # one thread per worker
        assert [r.value for r in ex.map(os.getenv, ["OMP_NUM_THREADS"])] == ["1"]
        # a worker that dies is replaced and its task run again
        res: list[TaskResult] = list(ex.map(_die_once, [str(tmp_path / "marker")]))
        assert res[0].ok and res[0].attempts == 2 and res[0].value != os.getpid()


def _cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def _corrupt_mid_file(path: Path, n: int) -> Path:
    """A pcap whose record 1,000 claims 200 MB: the reader stops there (a corrupt record, not the end)."""
    packets = synthetic_packets(n, seed=5)
    write_pcap(path, packets)
    at = 24 + sum(16 + len(f) for _, f in packets[:1000])
    data = bytearray(path.read_bytes())
    data[at + 8 : at + 16] = (200_000_000).to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    return path


def test_cli_corrupt_capture_is_reported_and_the_others_finish(
    scan_archive: Path, scan_bundle: Path, tmp_path: Path
) -> None:
    root = tmp_path / "caps"
    (root / "a").mkdir(parents=True)
    shutil.copy(scan_archive / "ward1" / "mon1.pcap", root / "a" / "good.pcap")
    shutil.copy(scan_archive / "Benign_lab.pcap", root / "lab.pcap")
    (root / "a" / "broken.pcap").write_bytes(b"this is no capture" * 100)
    _corrupt_mid_file(root / "cut.pcap", 3000)
    out = tmp_path / "out"
    res = _cli(
        "scan", root, "--model", scan_bundle, "--out", out, "--workers", "2", "--chunk-packets", "1000"
    )
    assert res.returncode == 1, res.stderr
    assert "broken.pcap" in res.stderr and "2 of 4 captures failed" in res.stderr
    rows = {r["file"]: r for r in csv.DictReader((out / "summary.csv").open())}
    broken = rows["a/broken.pcap"]
    assert broken["status"] == "error"
    assert (
        str(root / "a" / "broken.pcap") in broken["error"]
        and "not a pcap or pcapng capture" in broken["error"]
    )
    assert rows["cut.pcap"]["status"] == "partial" and "corrupt record" in rows["cut.pcap"]["error"]
    assert int(rows["cut.pcap"]["packets"]) == 1000  # scored up to the corrupt record, in 1 chunk
    assert rows["a/good.pcap"]["status"] == rows["lab.pcap"]["status"] == "ok"
    assert int(rows["a/good.pcap"]["chunks"]) == 12  # 12,000 packets: the good capture was chunked too
    for rel in ("a/good.pcap", "lab.pcap", "cut.pcap"):
        want = reference(root / rel, scan_bundle, tmp_path / "ref.jsonl")
        assert (out / "alerts" / f"{rel}.eve.json").read_bytes() == want[0], rel
    assert not (out / "alerts" / "a" / "broken.pcap.eve.json").exists()
    assert "TOTAL" in rows and rows["TOTAL"]["status"] == "2 failed"
    # stderr is not a terminal: one progress line per capture; the table goes to stdout
    assert "scan [4/4]" in res.stderr and "scan summary" in res.stdout


def test_cli_no_captures_and_bad_options_exit_2(scan_bundle: Path, tmp_path: Path) -> None:
    pattern = str(tmp_path / "**" / "*.pcap")
    res = _cli("scan", pattern, "--model", scan_bundle, "--out", tmp_path / "out")
    assert res.returncode == 2
    assert "no captures matched" in res.stderr and pattern in res.stderr
    (tmp_path / "empty").mkdir()
    res = _cli("scan", tmp_path / "empty", "--model", scan_bundle, "--out", tmp_path / "out")
    assert res.returncode == 2 and f"folder {tmp_path / 'empty'} (recursively" in res.stderr
    res = _cli("scan", tmp_path, "--model", scan_bundle, "--out", tmp_path / "o", "--executor", "dask")
    assert res.returncode == 2 and "--executor must be one of ['local', 'ray']" in res.stderr
    res = _cli("scan", tmp_path, "--model", scan_bundle, "--out", tmp_path / "o", "--ray-address", "h:6379")
    assert res.returncode == 2 and "needs --executor ray" in res.stderr


def test_local_executor_does_not_import_ray(scan_archive: Path, scan_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from iomt_ids.workflows.scan import ScanConfig, run_scan\n"
        f"r = run_scan(ScanConfig(model=Path({str(scan_bundle)!r}), out=Path({str(out)!r}), chunk_packets=2000, "
        "workers=2), [sys.argv[1], sys.argv[2]])\n"
        "assert not r.failed and r.files[1].chunks == 6, r.files\n"
        "assert 'ray' not in sys.modules, 'the local executor imported ray'\n"
        "print('ray imported:', 'ray' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(scan_archive / "Benign_lab.pcap"), str(scan_archive / "ward1" / "mon1.pcap")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "ray imported: False" in res.stdout
