"""Alert records: EVE JSON shape, timestamps, severity and signature maps, sinks."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from pathlib import Path

import pytest

from iomt_ids.data.labels import CLASS19_TO_CLASS6, CLASSES
from iomt_ids.detection.alerts import (
    DEFAULT_SEVERITY,
    SEVERITY_BY_CATEGORY,
    SIGNATURE_IDS,
    Alert,
    AlertSink,
    CallableSink,
    JsonLinesSink,
    StreamSink,
    as_sink,
    flow_id_for,
    severity_for,
    signature_id_for,
)
from iomt_ids.exceptions import ConfigError

TS = 1_767_225_600.123456  # 2026-01-01T00:00:00.123456Z


def _alert(**kw: object) -> Alert:
    base: dict[str, object] = dict(
        timestamp=TS,
        window_id=42,
        window=10,
        category="TCP/IP DDoS SYN",
        score=0.97,
        src_ip="10.0.0.66",
        dest_ip="10.0.0.5",
        src_port=40001,
        dest_port=80,
        proto="TCP",
        model="dnn",
        model_version="dnn-19c-abc",
        window_start=TS - 0.001,
        window_packets=10,
    )
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_alert_json_line_parses_back_to_the_eve_shape() -> None:
    line = _alert().to_json()
    assert "\n" not in line
    ev = json.loads(line)
    assert ev["event_type"] == "alert"
    assert ev["flow_id"] == (10 << 40) | 42
    assert (ev["src_ip"], ev["src_port"], ev["dest_ip"], ev["dest_port"], ev["proto"]) == (
        "10.0.0.66", 40001, "10.0.0.5", 80, "TCP",
    )  # fmt: skip
    a = ev["alert"]
    assert a["action"] == "allowed"
    assert a["category"] == "TCP/IP DDoS SYN"
    assert a["signature"] == "iomt-ids TCP/IP DDoS SYN"
    assert a["signature_id"] == SIGNATURE_IDS["TCP/IP DDoS SYN"] == 9_100_012
    assert a["severity"] == 1
    assert a["score"] == pytest.approx(0.97)
    assert (a["model"], a["model_version"], a["window"], a["window_packets"], a["count"]) == (
        "dnn", "dnn-19c-abc", 10, 10, 1,
    )  # fmt: skip
    assert "summary" not in a


def test_timestamp_is_iso8601_utc_from_window_end() -> None:
    ev = _alert().to_eve()
    parsed = dt.datetime.fromisoformat(ev["timestamp"])
    assert parsed.tzinfo is not None and parsed.utcoffset() == dt.timedelta(0)
    assert parsed.timestamp() == pytest.approx(TS, abs=1e-6)
    assert ev["timestamp"] == "2026-01-01T00:00:00.123456+0000"  # as Suricata writes it
    start = dt.datetime.fromisoformat(ev["alert"]["window_start"])
    assert start < parsed


def test_ports_only_for_tcp_and_udp() -> None:
    for proto in ("ICMP", "ARP", "IGMP"):
        ev = _alert(proto=proto, src_port=0, dest_port=0).to_eve()
        assert "src_port" not in ev and "dest_port" not in ev and ev["proto"] == proto
    assert json.loads(_alert(proto="UDP", dest_port=53).to_json())["dest_port"] == 53


def test_summary_alert_carries_count_and_interval() -> None:
    first = _alert(timestamp=TS, score=0.5)
    s = first.folded(count=17, last_seen=TS + 30, last_window_id=99, score=0.99)
    ev = json.loads(s.to_json())
    a = ev["alert"]
    assert a["summary"] is True and a["count"] == 17 and a["score"] == pytest.approx(0.99)
    assert ev["flow_id"] == (10 << 40) | 99 and ev["src_ip"] == first.src_ip
    assert dt.datetime.fromisoformat(ev["timestamp"]) == dt.datetime.fromisoformat(a["last_seen"])
    assert "window_start" not in a and "window_packets" not in a
    assert dt.datetime.fromisoformat(a["last_seen"]) - dt.datetime.fromisoformat(
        a["first_seen"]
    ) == dt.timedelta(seconds=30)


def test_score_is_never_nan_in_json() -> None:
    with pytest.raises(ValueError):
        _alert(score=math.nan).to_json()


def test_severity_map_covers_every_class_of_every_task() -> None:
    assert SEVERITY_BY_CATEGORY == {
        "DDoS": 1,
        "SPOOFING": 1,
        "DoS": 2,
        "MQTT": 2,
        "RECON": 3,
        "Attack": 2,
        "ANOMALY": 2,
    }
    for task in (2, 6, 19):
        for c in CLASSES[task]:
            if c == "Benign":
                continue
            assert severity_for(c) in (1, 2, 3), c
    # 19-class names follow their 6-class category
    for c19, c6 in CLASS19_TO_CLASS6.items():
        if c6 != "Benign":
            assert severity_for(c19) == SEVERITY_BY_CATEGORY[c6]
    assert severity_for("ARP spoofing") == 1
    assert severity_for("Recon port scan") == 3
    assert severity_for("MQTT malformed data") == 2
    assert severity_for("TCP/IP DoS UDP") == 2
    assert severity_for("something new") == DEFAULT_SEVERITY


def test_signature_ids_are_unique_and_stable() -> None:
    ids = [signature_id_for(c) for t in (19, 6, 2) for c in CLASSES[t] if c != "Benign"]
    assert len(ids) == len(set(ids)) == 18 + 5 + 1
    assert signature_id_for("RECON") == 9_200_004
    assert signature_id_for("Attack") == 9_300_001
    unknown = signature_id_for("custom class")
    assert unknown == signature_id_for("custom class") and 9_900_000 <= unknown < 10_000_000


def test_jsonlines_sink_appends_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    sink = JsonLinesSink(path)
    sink.emit(_alert(window_id=1))
    sink.flush()
    assert len(path.read_text().splitlines()) == 1  # visible after flush, before close
    sink.emit(_alert(window_id=2))
    sink.close()
    again = JsonLinesSink(path)
    again.emit(_alert(window_id=3))
    again.close()
    ids = [json.loads(line)["flow_id"] & 0xFFFFFFFFFF for line in path.read_text().splitlines()]
    assert ids == [1, 2, 3]
    with pytest.raises(ConfigError, match="already closed"):
        again.emit(_alert())


def test_jsonlines_sink_unwritable_path_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="alerts file .*file/alerts.jsonl"):
        JsonLinesSink(blocker / "alerts.jsonl")


def test_stream_and_callable_sinks_and_as_sink(tmp_path: Path) -> None:
    buf = io.StringIO()
    StreamSink(buf).emit(_alert())
    assert json.loads(buf.getvalue())["alert"]["category"] == "TCP/IP DDoS SYN"
    got: list[Alert] = []
    sink = as_sink(got.append)
    assert isinstance(sink, CallableSink) and isinstance(sink, AlertSink)
    sink.emit(_alert(window_id=5))
    assert [a.window_id for a in got] == [5]
    assert isinstance(as_sink("-"), StreamSink)
    file_sink = as_sink(tmp_path / "a.jsonl")
    assert isinstance(file_sink, JsonLinesSink)
    file_sink.close()
    with pytest.raises(ConfigError, match="sink: expected"):
        as_sink(42)  # type: ignore[arg-type]


def test_flow_ids_are_unique_across_window_streams() -> None:
    ids = {flow_id_for(w, i) for w in (10, 100) for i in range(1000)}
    assert len(ids) == 2000 and max(ids) < 2**53
    assert (
        _alert(window=100, window_id=7).to_eve()["flow_id"]
        != _alert(window=10, window_id=7).to_eve()["flow_id"]
    )
