"""The detection loop on known pcaps, through the real extractor and a real small bundle."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.artifacts import ModelBundle
from iomt_ids.detection import Alert, DetectConfig, Detector, JsonLinesSink, PcapSource, run_detection
from iomt_ids.detection.runner import DEFAULT_WINDOWS, StopFlag, check_release
from iomt_ids.exceptions import BundleError, CaptureError, ConfigError
from tests.detection import traffic
from tests.detection.conftest import FLOOD_CLASS


def test_pcap_to_alerts_jsonl_names_the_flood_source(
    bundle: ModelBundle, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    sink = JsonLinesSink(out)
    summary = run_detection(
        PcapSource(pcaps["mixed"]), Detector(bundle), [sink], DetectConfig(fold_seconds=60)
    )
    sink.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    events = [e for e in lines if e["event_type"] == "alert"]
    assert events, "the SYN flood must raise alerts"
    assert {e["event_type"] for e in lines} == {"alert", "stats"} and lines[-1]["event_type"] == "stats"
    assert lines[-1]["stats"]["detect"]["alerts_raw"] == summary.alerts_raw
    assert {e["src_ip"] for e in events} == {traffic.FLOODER}
    assert {e["alert"]["category"] for e in events} == {FLOOD_CLASS}
    assert {e["dest_ip"] for e in events} == {traffic.VICTIM}
    # folded: one first alert (and at most one summary) per (source, class) in a 60 s interval
    firsts = [e for e in events if not e["alert"].get("summary")]
    summaries = [e for e in events if e["alert"].get("summary")]
    assert len(firsts) == 1 and len(summaries) == 1
    assert summaries[0]["alert"]["count"] == summary.alerts_raw
    assert summary.alerts_emitted == len(events) == 2
    assert summary.alerts_suppressed == summary.alerts_raw - 1
    # counters
    n_packets = 1500 + 3000 + 60 + 750
    assert summary.packets == summary.accepted == n_packets
    # the last W=100 window has 10 packets (< min_partial * W): not scored
    assert summary.windows_by_size == {10: n_packets // 10, 100: n_packets // 100}
    assert summary.partial_dropped == 1
    assert summary.stopped_by == "end of input" and summary.dropped == 0
    assert summary.categories == {FLOOD_CLASS: summary.alerts_raw}
    # the flood is 3000 packets: about 300 windows of 10 and 30 of 100 alert
    assert 0.8 * 330 <= summary.alerts_raw <= 1.1 * 330
    assert summary.packets_per_s > 0 and summary.wall_s > 0


def test_without_folding_every_window_alert_is_written(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    got: list[Alert] = []
    summary = run_detection(
        PcapSource(pcaps["mixed"]),
        Detector(bundle),
        [got.append],
        DetectConfig(windows=(100,), fold_seconds=0),
    )
    assert len(got) == summary.alerts_raw == summary.alerts_emitted > 20
    assert all(a.window == 100 and a.count == 1 for a in got)
    # alerts come out in stream order and sit inside the flood
    ids = [a.window_id for a in got]
    assert ids == sorted(ids)
    assert all(a.src_ip == traffic.FLOODER for a in got)


def test_threshold_one_silences_and_low_threshold_adds(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    cfg = DetectConfig(windows=(10,), fold_seconds=0)
    raw = {
        t: run_detection(PcapSource(pcaps["mixed"]), Detector(bundle, threshold=t), [], cfg).alerts_raw
        for t in (0.2, 0.5, 0.99)
    }
    assert raw[0.2] >= raw[0.5] >= raw[0.99]
    assert raw[0.5] > 0


def test_benign_capture_is_quiet(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    summary = run_detection(PcapSource(pcaps["benign"]), Detector(bundle), [], DetectConfig())
    assert summary.windows == 150 + 15
    assert summary.alerts_raw <= 3


def test_max_packets_and_stop_flag(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    summary = run_detection(
        PcapSource(pcaps["mixed"], batch_size=1000), Detector(bundle), [], DetectConfig(max_packets=2345)
    )
    assert summary.packets == 2345 and summary.stopped_by == "max packets"
    # partial windows are scored at the end when at least half full: 5 of 10 yes, 45 of 100 no
    assert summary.windows_by_size == {10: 235, 100: 23} and summary.partial_dropped == 1
    summary = run_detection(
        PcapSource(pcaps["mixed"], batch_size=1000),
        Detector(bundle),
        [],
        DetectConfig(max_packets=2345, min_partial=0.0),
    )
    assert summary.windows_by_size == {10: 235, 100: 24} and summary.partial_dropped == 0
    stop = StopFlag()
    seen: list[int] = []

    def stop_after_first_progress(s: object) -> None:
        seen.append(1)
        stop.request("signal SIGINT")

    summary = run_detection(
        PcapSource(pcaps["mixed"], batch_size=500),
        Detector(bundle),
        [],
        DetectConfig(progress_interval=0.0),
        stop=stop,
        on_progress=stop_after_first_progress,
    )
    assert seen and summary.packets == 500 and summary.stopped_by == "signal SIGINT"


def test_memory_state_is_bounded_on_long_input(bundle: ModelBundle, tmp_path: Path) -> None:
    # 40 sources each flooding in turn: the folder keeps at most fold_max_keys intervals
    rng = np.random.default_rng(3)
    pkts: list[tuple[float, bytes]] = []
    t = traffic.T0
    for i in range(40):
        pkts += traffic.syn_flood(300, rng, t, src=f"10.1.0.{i + 1}")
        t = pkts[-1][0]
    path = traffic.write_pcap(tmp_path / "many.pcap", pkts)
    got: list[Alert] = []
    summary = run_detection(
        PcapSource(path), Detector(bundle), [got.append], DetectConfig(windows=(100,), fold_max_keys=5)
    )
    assert summary.alerts_raw >= 100
    firsts = {a.src_ip for a in got if not a.summary}
    assert len(firsts) >= 35  # each flooder is reported
    summaries = [a for a in got if a.summary]
    assert summaries and all(a.count >= 2 for a in summaries)
    assert sum(a.count for a in summaries) <= summary.alerts_raw


def test_release_the_extractor_cannot_make_is_refused(bundle: ModelBundle) -> None:
    check_release(bundle)
    with pytest.raises(BundleError, match="release 'v3'.*cannot be produced"):
        check_release(replace(bundle, release="v3"))


def test_config_and_source_errors(tmp_path: Path) -> None:
    assert DetectConfig().windows == DEFAULT_WINDOWS == (10, 100)
    for kw in (
        {"windows": ()},
        {"windows": (10, 10)},
        {"windows": (0,)},
        {"fold_seconds": -1},
        {"max_packets": 0},
    ):
        with pytest.raises(ConfigError):
            DetectConfig(**kw)  # type: ignore[arg-type]
    with pytest.raises(CaptureError, match="nope.pcap"):
        PcapSource(tmp_path / "nope.pcap")
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all")
    with pytest.raises(CaptureError, match="junk.pcap"):
        PcapSource(junk)
    with pytest.raises(CaptureError, match="is a folder"):
        PcapSource(tmp_path)


def test_stop_event_from_another_thread(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    stop = threading.Event()
    stop.set()
    summary = run_detection(PcapSource(pcaps["mixed"], batch_size=100), Detector(bundle), [], stop=stop)
    assert summary.packets == 100 and summary.stopped_by == "stop requested"


def test_stop_on_signals_sets_the_flag_and_second_sigint_interrupts() -> None:
    import signal

    from iomt_ids.detection.runner import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    stop = StopFlag()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) and stop.reason == "signal SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # already stopping: a second Ctrl-C aborts
            time.sleep(1)  # the handler runs here at the latest
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_real_third_party_pcaps_never_crash(bundle: ModelBundle) -> None:
    folder = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
    files = sorted(p for p in folder.glob("*.pcap*")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"real third-party pcaps not found at {folder}")
    done = refused = 0
    for path in files:
        try:
            summary = run_detection(PcapSource(path), Detector(bundle), [], DetectConfig())
        except CaptureError as exc:
            assert path.name in str(exc) and "link type" in str(exc)
            refused += 1
            continue
        assert summary.packets > 0 and summary.stopped_by == "end of input", path.name
        assert summary.accepted <= summary.packets
        done += 1
    assert done >= 10 and refused <= 3


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the explanation thread needs 2 CPUs")
def test_explanation_thread_writes_the_same_lines_in_the_same_order(
    bundle: ModelBundle, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    """Explanations on a second thread: same alert lines, same explanations, same order (stats last)."""
    names: list[str] = []

    class Recording(Detector):
        def explain(self, features, window):  # type: ignore[no-untyped-def]
            names.append(threading.current_thread().name)
            return super().explain(features, window)

    runs = {}
    for thread in (False, True):
        names.clear()
        out = tmp_path / f"alerts-{thread}.jsonl"
        sink = JsonLinesSink(out)
        # small batches and no folding: many batches whose lines wait for their explanations
        summary = run_detection(
            PcapSource(pcaps["mixed"], batch_size=256),
            Recording(bundle),
            [sink],
            DetectConfig(fold_seconds=0, explain_thread=thread),
        )
        sink.close()
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        runs[thread] = (lines, list(names), summary)
    (plain, plain_threads, s0), (threaded, explain_threads, s1) = runs[False], runs[True]
    alerts = [e for e in plain if e["event_type"] == "alert"]
    assert len(alerts) == s0.alerts_emitted > 20
    assert all(e["alert"]["metadata"].get("explanation") for e in alerts)
    assert [e for e in threaded if e["event_type"] == "alert"] == alerts
    assert [e["event_type"] for e in threaded] == [e["event_type"] for e in plain]
    assert threaded[-1]["event_type"] == "stats" and s1.alerts_emitted == s0.alerts_emitted
    assert set(plain_threads) == {threading.main_thread().name}
    assert explain_threads and all(n.startswith("iomt-explain") for n in explain_threads)
    assert len(explain_threads) > 5  # one call per window batch that wrote lines
    assert not any(t.name.startswith("iomt-explain") for t in threading.enumerate())  # stopped at the end
