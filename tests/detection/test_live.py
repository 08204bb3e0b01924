"""Live capture with pcapy-ng on a veth pair the test creates, fed by a real AF_PACKET sender.

Needs root (to create the veth pair and capture), iproute2's ``ip`` and pcapy-ng;
skipped with the reason otherwise. The SIGINT test runs ``iomt-ids detect
--interface`` as a real subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import numpy as np
import pytest

from iomt_ids.artifacts import ModelBundle
from iomt_ids.detection import DetectConfig, Detector, LiveSource, run_detection
from iomt_ids.exceptions import CaptureError
from tests.detection import traffic
from tests.detection.conftest import FLOOD_CLASS

pytestmark = pytest.mark.root


def _why_no_live() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "live capture needs root (creates a veth pair and opens it with libpcap)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' is not installed"
    try:
        import pcapy  # noqa: F401
    except ImportError as exc:
        return f"pcapy-ng / libpcap not available ({exc}); pip install 'iomt-ids[capture]'"
    return None


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A veth pair (capture end, sender end), both up, IPv6 off; deleted afterwards."""
    why = _why_no_live()
    if why:
        pytest.skip(why)
    tag = f"{os.getpid() % 100000}{threading.get_ident() % 10}"
    cap, snd = f"idc{tag}"[:15], f"ids{tag}"[:15]
    made = subprocess.run(
        ["ip", "link", "add", cap, "type", "veth", "peer", "name", snd], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a veth pair here: {made.stderr.strip()}")
    try:
        for name in (cap, snd):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"], capture_output=True)
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield cap, snd
    finally:
        subprocess.run(["ip", "link", "del", cap], capture_output=True)


def _send(iface: str, frames: list[bytes], pace_every: int = 100) -> None:
    # paced: an unpaced burst can overflow the kernel's per-CPU backlog (netdev_max_backlog)
    # on a busy host, and those frames are lost before libpcap could count them
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        s.bind((iface, 0))
        for i, f in enumerate(frames):
            s.send(f)
            if pace_every and i % pace_every == pace_every - 1:
                time.sleep(0.002)  # keep the veth backlog small
    finally:
        s.close()


def _flood_frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    return [f for _, f in traffic.syn_flood(n, rng, 0.0)]


def _ipv6_frame() -> bytes:
    return bytes(
        dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x86DD, data=b"\x60" + bytes(39))
    )


def test_live_source_captures_what_was_sent(veth: tuple[str, str]) -> None:
    cap, snd = veth
    sent = _flood_frames(300)
    source = LiveSource(cap, timeout_ms=50, idle_s=0.05)
    source.open()
    try:
        t_sent = time.time()
        _send(snd, sent[:150] + [_ipv6_frame()] * 20 + sent[150:])
        got: list[bytes] = []
        ts: list[float] = []
        stop = threading.Event()
        deadline = time.monotonic() + 10
        for batch in source.batches(stop):
            got += list(batch.frames)
            ts += batch.ts.tolist()
            if len(got) >= len(sent) or time.monotonic() > deadline:
                stop.set()
    finally:
        source.close()
    assert got == sent  # IPv6 filtered out by BPF "arp or ip", order and bytes kept
    assert source.linktype == 1
    assert all(abs(t - t_sent) < 30 for t in ts) and ts == sorted(ts)
    assert source.stats.packets == 300
    assert source.stats.pcap_received >= 300 and source.stats.dropped == 0


def test_live_detection_counts_windows_and_alerts(veth: tuple[str, str], bundle: ModelBundle) -> None:
    cap, snd = veth
    source = LiveSource(cap, timeout_ms=50, idle_s=0.05)
    source.open()  # capture is running before the sender starts
    frames = _flood_frames(2000)
    sender = threading.Thread(target=_send, args=(snd, frames))
    got = []
    sender.start()
    summary = run_detection(
        source,
        Detector(bundle),
        [got.append],
        DetectConfig(windows=(10, 100), duration=3.0, progress_interval=0.2),
    )
    sender.join()
    assert summary.stopped_by == "duration"
    assert summary.packets == summary.accepted
    assert 1900 <= summary.packets + source.stats.dropped <= 2000
    assert summary.windows_by_size[10] >= 150 and summary.windows_by_size[100] >= 15
    assert summary.alerts_raw > 0 and got
    assert {a.src_ip for a in got} == {traffic.FLOODER} and {a.category for a in got} == {FLOOD_CLASS}
    # live folding runs on wall time: the 60 s interval is still open, so the summary comes from the final flush
    assert any(a.summary and a.count == summary.alerts_raw for a in got)


def test_missing_interface_is_a_clear_error() -> None:
    why = _why_no_live()
    if why:
        pytest.skip(why)
    with pytest.raises(CaptureError, match="interface 'nosuchif0'"):
        LiveSource("nosuchif0").open()


def test_cli_detect_interface_stops_on_sigint(
    veth: tuple[str, str], bundle_dir: Path, tmp_path: Path
) -> None:
    cap, snd = veth
    alerts = tmp_path / "alerts.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from iomt_ids.cli import main; main()", "detect", "--model", str(bundle_dir),
         "--interface", cap, "--alerts", str(alerts), "--window", "10", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        # wait until the capture is open (its log line), then send a flood
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "capturing on" in line:
                break
        assert any("capturing on" in ln for ln in lines), "".join(lines)
        _send(snd, _flood_frames(1000))
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "detect summary (signal SIGINT)" in out
    assert "Traceback" not in out
    assert "│ packets" in out and "windows" in out
    events = [json.loads(x) for x in alerts.read_text().splitlines()]
    events = [e for e in events if e["event_type"] == "alert"]
    assert events and {e["src_ip"] for e in events} == {traffic.FLOODER}


def test_interface_going_down_stops_the_run_with_its_summary(
    veth: tuple[str, str], bundle: ModelBundle
) -> None:
    cap, snd = veth
    source = LiveSource(cap, timeout_ms=50, idle_s=0.05)
    got: list[object] = []
    result: dict[str, object] = {}

    def run() -> None:
        result["summary"] = run_detection(
            source, Detector(bundle), [got.append], DetectConfig(windows=(10,), duration=30.0)
        )

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while source._cap is None and time.monotonic() < deadline:  # capture open
        time.sleep(0.02)
    _send(snd, _flood_frames(500))
    time.sleep(1.0)
    subprocess.run(["ip", "link", "del", cap], check=True)
    worker.join(timeout=15)
    assert not worker.is_alive(), "the run must stop when its interface disappears"
    summary = result["summary"]
    assert summary.stopped_by == "capture error" and cap in summary.error  # type: ignore[attr-defined]
    assert 450 <= summary.packets <= 500  # type: ignore[attr-defined]
    assert summary.windows_by_size[10] >= 45  # type: ignore[attr-defined]
    assert got  # alerts seen before the failure were written (folded summary flushed)


def test_cli_detect_interface_duration(veth: tuple[str, str], bundle_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from iomt_ids.cli import _register, app

    _register()
    cap, _ = veth
    t0 = time.monotonic()
    res = CliRunner().invoke(
        app,
        [
            "detect",
            "-m",
            str(bundle_dir),
            "-i",
            cap,
            "--duration",
            "1",
            "--alerts",
            str(tmp_path / "a.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "detect summary (duration)" in res.output and time.monotonic() - t0 < 30
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [e["event_type"] for e in lines] == ["stats"]  # an idle link: no alerts, the run's counts
    assert (
        lines[0]["stats"]["detect"]["windows"] == 0
        and abs(dt.datetime.fromisoformat(lines[0]["timestamp"]).timestamp() - time.time()) < 60
    )


def test_bounded_queue_drops_and_counts_when_the_detector_lags(veth: tuple[str, str]) -> None:
    cap, snd = veth
    source = LiveSource(cap, timeout_ms=10, idle_s=0.05, max_batch=64, max_queue_bytes=64 * 60 * 4)
    source.open()
    try:
        _send(snd, _flood_frames(2000), 0)
        time.sleep(1.0)  # nobody consumes: at most ~4 batches of 64 frames stay queued
        stop = threading.Event()
        got = 0
        for batch in source.batches(stop):
            got += len(batch)
            if not len(batch):  # queue drained
                stop.set()
    finally:
        source.close()
    assert source.stats.queue_dropped > 0 and got <= 64 * 60 * 4 // 60
    assert got + source.stats.queue_dropped + source.stats.pcap_dropped == 2000
    assert source.stats.dropped >= source.stats.queue_dropped
