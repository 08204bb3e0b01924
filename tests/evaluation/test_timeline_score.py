"""Scoring EVE alerts against an attack timeline: hand-built cases, bad input, and parity with the reference."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iomt_ids.evaluation.timeline import (
    Alert,
    Attack,
    TimelineScore,
    family,
    load_alerts,
    load_timeline,
    parse_timestamp,
    score_timeline,
)
from iomt_ids.exceptions import BadValueError, ConfigError, DataError, SchemaError

#: The reference arithmetic lives beside the checkout: <parent>/shared/tools/score_timeline.py.
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "tools" / "score_timeline.py"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_file(), reason=f"reference script not found at {REFERENCE} (the checkout's ../shared)"
)

T0 = 1_796_119_200  # 2026-12-01T10:00:00Z
UTC0 = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
A1, A2, VICTIM, OTHER = "10.77.0.101", "10.77.0.102", "10.77.0.2", "10.77.0.50"


def iso(offset_s: float, style: str = "+00:00") -> str:
    """EVE timestamp ``offset_s`` seconds after T0, written as Suricata ('+0000'), ISO ('+00:00'), 'Z' or '+01:00'."""
    t = UTC0 + dt.timedelta(microseconds=round(offset_s * 1_000_000))
    if style == "+01:00":
        return t.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat(timespec="microseconds")
    s = t.isoformat(timespec="microseconds")
    return {"+00:00": s, "+0000": s[:-6] + "+0000", "Z": s[:-6] + "Z"}[style]


def alert_line(
    offset_s: float, src: str | None = A1, category: str | None = "TCP/IP DDoS SYN", count: Any = None,
    style: str = "+00:00", **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"signature": f"iomt-ids {category}", "category": category, "severity": 1}
    if count is not None:
        body["count"] = count
    return {"timestamp": iso(offset_s, style), "event_type": "alert", "src_ip": src, "dest_ip": VICTIM,
            "proto": "TCP", "alert": body, **extra}  # fmt: skip


def attack(name: str, start: float, end: float, attackers: list[str] | None = None) -> dict[str, Any]:
    return {"attack": name, "start": T0 + start, "end": T0 + end, "attackers": attackers or [A1]}


def write(
    tmp_path: Path, attacks: list[dict[str, Any]], lines: list[Any], name: str = "x"
) -> tuple[Path, Path]:
    t = tmp_path / f"{name}_timeline.json"
    a = tmp_path / f"{name}_alerts.jsonl"
    t.write_text(json.dumps(attacks))
    a.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return t, a


def score(
    tmp_path: Path, attacks: list[dict[str, Any]], lines: list[Any], grace: float = 10.0
) -> TimelineScore:
    t, a = write(tmp_path, attacks, lines)
    return score_timeline(load_timeline(t), load_alerts(a), grace=grace)


def reference(t: Path, a: Path, grace: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REFERENCE), str(t), str(a), "--grace", repr(float(grace)), "--json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


# --------------------------------------------------------------------------- examples


def test_family_maps_19_class_names_stems_and_6_class_names() -> None:
    assert [family(n) for n in ("MQTT DDoS connect flood", "MQTT-Malformed_Data", "Recon OS scan",
                                "ARP spoofing", "ARP_Spoofing", "TCP/IP DDoS UDP", "TCP_IP-DoS-ICMP",
                                "DDoS", "DoS", "SPOOFING")] == [
        "MQTT", "MQTT", "RECON", "SPOOFING", "SPOOFING", "DDoS", "DoS", "DDoS", "DoS", "SPOOFING"]  # fmt: skip
    assert (family("Benign"), family(" weird_thing "), family(""), family(None)) == (
        "BENIGN",
        "WEIRD THING",
        "?",
        "?",
    )


def test_folded_counts_weigh_alerts_but_not_lines(tmp_path: Path) -> None:
    s = score(
        tmp_path,
        [attack("TCP/IP DDoS SYN", 100, 160, [A1, A2])],
        [alert_line(10, src=OTHER, count=7), alert_line(20, src=OTHER), alert_line(110, count=5),
         alert_line(120, src=A2, count=0)],  # count 0 means one alert, like absent
    )  # fmt: skip
    assert (s.false_alerts, s.false_alert_lines) == (8, 2)
    r = s.per_attack[0]
    assert (r.alerts, r.attributed_alerts, r.detected, r.attributed, r.named) == (6, 6, True, True, True)
    assert r.first_s == 10.0 and r.first_alert_src == A1
    # span: first alert - 60 .. attack end + 25; minus end + grace - start + 1
    assert s.benign_s == (T0 + 160 + 25 - (T0 + 10 - 60)) - (60 + 10.0 + 1)
    assert s.to_dict()["false_alerts_per_hour"] == round(8 / (s.benign_s / 3600), 1)
    assert s.to_dict()["false_alert_lines_per_hour"] == round(2 / (s.benign_s / 3600), 1)


@pytest.mark.parametrize(
    ("offset", "inside"),
    [(99.0, True), (98.999, False), (170.0, True), (170.001, False), (130.0, True)],
)
def test_grace_edges_are_inclusive(tmp_path: Path, offset: float, inside: bool) -> None:
    # attack 100..160, grace 10: interval [99, 170]
    s = score(tmp_path, [attack("TCP/IP DDoS SYN", 100, 160)], [alert_line(offset)])
    assert s.per_attack[0].detected is inside
    assert s.false_alert_lines == (0 if inside else 1)
    if inside:
        assert s.per_attack[0].first_s == round(offset - 100, 2)


def test_grace_zero_and_negative_first_s(tmp_path: Path) -> None:
    s = score(tmp_path, [attack("Recon port scan", 100, 160)], [alert_line(99.5, category="Recon port scan"),
                                                                alert_line(160.5)], grace=0.0)  # fmt: skip
    assert s.per_attack[0].first_s == -0.5 and s.per_attack[0].alerts == 1 and s.false_alert_lines == 1


def test_overlapping_attacks_share_alerts_and_are_subtracted_twice(tmp_path: Path) -> None:
    attacks = [
        attack("TCP/IP DDoS SYN", 100, 200, [A1, A2]),
        attack("MQTT DoS connect flood", 150, 250, [A2]),
    ]
    s = score(
        tmp_path, attacks, [alert_line(180, src=A2, count=2), alert_line(205, src=A1, category="MQTT DoS")]
    )
    a, b = s.per_attack
    assert (a.alerts, b.alerts) == (3, 3)  # the alert at 180 counts for both
    assert a.majority == "DDoS" and a.named and b.majority == "DDoS" and not b.named
    assert a.attributed and b.attributed
    assert s.false_alert_lines == 0
    span = (T0 + 250 + 25) - (T0 + 100 - 60)
    assert s.benign_s == span - (100 + 10.0 + 1) - (100 + 10.0 + 1)  # overlap subtracted twice


def test_no_alerts_at_all(tmp_path: Path) -> None:
    s = score(tmp_path, [attack("ARP spoofing", 0, 30), attack("Recon ping sweep", 100, 130)], [])
    d = s.to_dict()
    assert d["false_alerts"] == 0 and d["false_alerts_per_hour"] == 0.0 and d["attacks_detected"] == 0
    assert d["per_attack"][0] == {"attack": "ARP spoofing", "detected": False, "attributed": False, "first_s": None,
                                  "named": False, "majority": None, "alerts": 0, "categories": []}  # fmt: skip
    assert s.benign_s == (130 + 25 + 60) - 2 * (30 + 10.0 + 1)


def test_non_alert_events_and_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    lines: list[Any] = [
        {"timestamp": iso(5), "event_type": "stats", "stats": {"uptime": 5}},
        "",
        {"timestamp": iso(6), "event_type": "flow"},
        {"note": "no event type"},
        alert_line(110),
        {"timestamp": iso(7), "event_type": "stats"},
    ]
    t, a = write(tmp_path, [attack("TCP/IP DDoS SYN", 100, 160)], lines)
    log = load_alerts(a)
    assert len(log) == 1 and log.alerts[0].line == 5
    assert log.skipped == {"?": 1, "flow": 1, "stats": 2} and log.skipped_lines == 4
    s = score_timeline(load_timeline(t), log)
    assert s.per_attack[0].detected and s.false_alert_lines == 0 and s.alert_lines == 1


@pytest.mark.parametrize("style", ["+0000", "+00:00", "Z", "+01:00"])
def test_timestamp_styles_agree(style: str) -> None:
    assert parse_timestamp(iso(1.25, style)) == T0 + 1.25
    assert parse_timestamp("2026-12-01T10:00:00.123456+0000") == pytest.approx(T0 + 0.123456)


def test_suricata_timestamps_in_a_file(tmp_path: Path) -> None:
    s = score(tmp_path, [attack("TCP/IP DoS UDP", 100, 160)],
              [alert_line(100.25, style="+0000", category="TCP/IP DoS UDP"), alert_line(300, style="Z")])  # fmt: skip
    assert s.per_attack[0].first_s == 0.25 and s.per_attack[0].named and s.false_alert_lines == 1


def test_majority_is_by_count_and_names_map_to_families(tmp_path: Path) -> None:
    lines = [
        alert_line(101, src=OTHER, category="Recon port scan"),  # 1 RECON line first...
        alert_line(102, src=OTHER, category="TCP/IP DoS SYN", count=2),
        alert_line(103, src=OTHER, category="TCP/IP DDoS SYN"),
        alert_line(104, src=OTHER, category="TCP_IP-DDoS-UDP"),  # ...but DDoS has 2 alerts, DoS 2: tie
        alert_line(105, src=OTHER, category="Recon OS scan", count=3),  # RECON 4: majority
    ]
    s = score(tmp_path, [attack("Recon vulnerability scan", 100, 160)], lines)
    r = s.per_attack[0]
    assert r.majority == "RECON" and r.named and not r.attributed and r.first_alert_src == OTHER
    assert r.categories == sorted({"Recon port scan", "TCP/IP DoS SYN", "TCP/IP DDoS SYN", "TCP_IP-DDoS-UDP",
                                   "Recon OS scan"})  # fmt: skip
    # a tie goes to the family seen first in time
    s = score(tmp_path, [attack("TCP/IP DDoS SYN", 100, 160)], lines[1:4])
    assert s.per_attack[0].majority == "DoS" and not s.per_attack[0].named


def test_missing_category_is_its_own_family(tmp_path: Path) -> None:
    s = score(tmp_path, [attack("MQTT malformed data", 100, 160)], [alert_line(110, category=None, count=3),
                                                                    alert_line(111, category="MQTT-Malformed")])  # fmt: skip
    r = s.per_attack[0]
    assert r.majority == "?" and not r.named and r.categories == ["MQTT-Malformed", "None"]


def test_alerts_only_without_attacks(tmp_path: Path) -> None:
    s = score(tmp_path, [], [alert_line(0), alert_line(100, count=2)])
    assert s.attacks == 0 and s.false_alerts == 3 and s.benign_s == 100 + 60 + 25


def test_alert_objects_can_be_scored_directly() -> None:
    attacks = [Attack("DDoS", T0 + 100, T0 + 160, (A1,))]
    alerts = [Alert(T0 + 120.0, A1, VICTIM, 2, "DDoS"), Alert(T0 + 10.0, None, None, 1, None)]
    s = score_timeline(attacks, alerts)
    assert s.per_attack[0].alerts == 2 and s.false_alerts == 1 and s.per_attack[0].first_s == 20.0


# --------------------------------------------------------------------------- bad input


def _bad_alerts(tmp_path: Path, second_line: Any) -> Path:
    _, a = write(tmp_path, [], [alert_line(1), second_line])
    return a


@pytest.mark.parametrize(
    ("line", "exc", "match"),
    [
        ('{"event_type": "alert", ', DataError, r"line 2: not valid JSON"),
        ("[1, 2]", SchemaError, r"line 2: expected a JSON object; got list"),
        ({"event_type": "alert", "alert": {}}, SchemaError, r"line 2: an alert event without 'timestamp'"),
        ({"event_type": "alert", "timestamp": iso(1)}, SchemaError, r"line 2: an alert event without 'alert'"),
        ({"event_type": "alert", "timestamp": "yesterday", "alert": {}}, BadValueError,
         r"line 2: bad 'timestamp': .*yesterday"),
        ({"event_type": "alert", "timestamp": "2026-12-01T10:00:00", "alert": {}}, BadValueError,
         r"line 2: bad 'timestamp': .*no UTC offset"),
        ({"event_type": "alert", "timestamp": 12, "alert": {}}, BadValueError, r"line 2: bad 'timestamp'"),
        ({"event_type": "alert", "timestamp": iso(1), "alert": "x"}, BadValueError, r"'alert' must be an object"),
        (alert_line(2, count=-1), BadValueError, r"line 2: 'alert.count' must be a positive integer; got -1"),
        (alert_line(2, count="3"), BadValueError, r"'alert.count' must be a positive integer; got '3'"),
        (alert_line(2, src=17), BadValueError, r"line 2: 'src_ip' must be a string or null; got 17"),
        (alert_line(2, category=3), BadValueError, r"line 2, 'alert': 'category' must be a string or null"),
    ],
)  # fmt: skip
def test_bad_alert_lines_name_file_line_and_field(tmp_path: Path, line: Any, exc: type, match: str) -> None:
    a = _bad_alerts(tmp_path, line)
    with pytest.raises(exc, match=match) as info:
        load_alerts(a)
    assert str(a) in str(info.value) and isinstance(info.value, DataError)


@pytest.mark.parametrize(
    ("content", "exc", "match"),
    [
        ("[{", DataError, r"not valid JSON \(line 1"),
        ('{"attack": "DDoS"}', SchemaError, r"expected a JSON list of attacks; got dict"),
        ('["DDoS"]', SchemaError, r"entry 0: expected an object; got str"),
        (json.dumps([{"attack": "DDoS", "end": 5, "attackers": []}]), SchemaError,
         r"entry 0: missing field\(s\) \['start'\]"),
        (json.dumps([{"attack": "DDoS", "start": 1, "end": 5, "attackers": []}, {"start": 1, "end": 2}]),
         SchemaError, r"entry 1: missing field\(s\) \['attack', 'attackers'\]"),
        (json.dumps([{"attack": "DDoS", "start": 10, "end": 5, "attackers": []}]), BadValueError,
         r"entry 0: 'end' \(5\) is before 'start' \(10\)"),
        (json.dumps([{"attack": "DDoS", "start": "10", "end": 5, "attackers": []}]), BadValueError,
         r"'start' must be a finite number"),
        (json.dumps([{"attack": "DDoS", "start": 1, "end": 5, "attackers": A1}]), BadValueError,
         r"'attackers' must be a list of IP address strings"),
        (json.dumps([{"attack": "", "start": 1, "end": 5, "attackers": []}]), BadValueError,
         r"'attack' must be a non-empty class name"),
    ],
)  # fmt: skip
def test_bad_timelines_name_file_entry_and_field(tmp_path: Path, content: str, exc: type, match: str) -> None:
    t = tmp_path / "timeline.json"
    t.write_text(content)
    with pytest.raises(exc, match=match) as info:
        load_timeline(t)
    assert str(t) in str(info.value)


def test_missing_files_and_bad_scoring_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"timeline file '.*nope.json' does not exist"):
        load_timeline(tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"alerts file '.*' is a directory"):
        load_alerts(tmp_path)
    attacks = [Attack("DDoS", T0, T0 + 10, (A1,))]
    with pytest.raises(ConfigError, match=r"grace must be a finite number of seconds >= 0; got -1"):
        score_timeline(attacks, [], grace=-1)
    with pytest.raises(DataError, match="nothing to score"):
        score_timeline([], [])


# --------------------------------------------------------------------------- parity with the reference


@needs_reference
def test_alerts_with_equal_timestamps_order_like_the_reference(tmp_path: Path) -> None:
    # the reference sorts whole tuples; equal times fall back to src_ip, which decides the vote tie here
    t, a = write(tmp_path, [attack("TCP/IP DDoS SYN", 100, 160, [A2])],
                 [alert_line(110, src=A2, category="TCP/IP DoS SYN"), alert_line(110, src=A1),
                  alert_line(300, src=A2, count=4), alert_line(300, src=A1, count=4, category="Recon")])  # fmt: skip
    ours = score_timeline(load_timeline(t), load_alerts(a)).to_dict()
    ref = reference(t, a)
    assert ref.returncode == 0, ref.stderr
    assert json.dumps(ours) == ref.stdout.strip()
    assert ours["per_attack"][0]["majority"] == "DDoS"  # A1's DDoS alert sorts first


_NAMES = ["TCP/IP DDoS SYN", "TCP/IP DoS UDP", "MQTT DDoS publish flood", "Recon port scan", "ARP spoofing",
          "Benign", "TCP_IP-DDoS-ICMP", "Recon-VulScan", "DoS", "SPOOFING"]  # fmt: skip
_IPS = [A1, A2, "10.77.0.103", VICTIM, OTHER]


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[Any], float]:
    grace = draw(st.sampled_from([0.0, 2.5, 10.0, 7.3]))
    attacks = []
    for _ in range(draw(st.integers(0, 4))):
        start: float = draw(st.one_of(st.integers(0, 600), st.integers(0, 2400).map(lambda k: k / 4)))
        length = draw(st.integers(0, 120))
        attackers = draw(st.lists(st.sampled_from(_IPS), max_size=3, unique=True))
        attacks.append({"attack": draw(st.sampled_from(_NAMES)), "start": T0 + start,
                        "end": T0 + start + length, "attackers": attackers})  # fmt: skip
    # interval edges (start - 1, end + grace) and a microsecond either side; half-second grid
    # times also hit the edges now and then; microsecond times fall anywhere
    edges = [
        e + d
        for x in attacks
        for e in (x["start"] - T0 - 1, x["end"] - T0 + grace)
        for d in (0.0, -1e-6, 1e-6)
    ]
    times = st.one_of(
        st.integers(-120, 1600).map(lambda k: k / 2),
        st.integers(-60_000_000, 800_000_000).map(lambda us: us / 1e6),
        *([st.sampled_from(edges)] if edges else []),
    )
    # distinct microseconds: the reference's tuple sort fails on a None src_ip tied with a string one
    offsets = draw(
        st.lists(times, min_size=0 if attacks else 1, max_size=14, unique_by=lambda t: round(t * 1e6))
    )
    lines: list[Any] = []
    for off in offsets:
        count = draw(st.sampled_from([None, 0, 1, 2, 5, 100]))
        lines.append(alert_line(off, src=draw(st.sampled_from([*_IPS, None])), count=count,
                                category=draw(st.sampled_from([*_NAMES, None, "Recon"])),
                                style=draw(st.sampled_from(["+0000", "+00:00", "Z", "+01:00"]))))  # fmt: skip
        if draw(st.booleans()) and draw(st.booleans()):
            lines.append({"timestamp": iso(off), "event_type": "stats", "stats": {}})
    return attacks, draw(st.permutations(lines)), grace


@needs_reference
@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_case())
def test_matches_the_reference_script(
    tmp_path: Path, case: tuple[list[dict[str, Any]], list[Any], float]
) -> None:
    attacks, lines, grace = case
    t, a = write(tmp_path, attacks, lines)
    ref = reference(t, a, grace)
    if ref.returncode != 0:  # the reference divides by zero when there is no benign time at all
        assert "ZeroDivisionError" in ref.stderr, ref.stderr
        with pytest.raises(DataError, match="no benign time"):
            score_timeline(load_timeline(t), load_alerts(a), grace=grace)
        return
    ours = score_timeline(load_timeline(t), load_alerts(a), grace=grace).to_dict()
    assert ours == json.loads(ref.stdout)
    assert json.dumps(ours) == ref.stdout.strip()  # same key order and number types


# --------------------------------------------------------------------------- the command line


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from iomt_ids.cli import main; main()"
    env = {**os.environ, "COLUMNS": "160"}  # wide enough that rich does not wrap the attack names
    return subprocess.run([sys.executable, "-c", code, "score-alerts", *args],
                          capture_output=True, text=True, check=False, timeout=120, env=env)  # fmt: skip


def test_cli_json_table_out_and_bad_input(tmp_path: Path) -> None:
    t, a = write(tmp_path, [attack("TCP/IP DDoS SYN", 100, 160, [A1]), attack("Recon port scan", 300, 330)],
                 [alert_line(105, style="+0000", count=3), alert_line(500, src=OTHER),
                  {"timestamp": iso(501), "event_type": "stats"}])  # fmt: skip
    expected = score_timeline(load_timeline(t), load_alerts(a), grace=5.0).to_dict()
    out = tmp_path / "score.json"
    res = _cli("--timeline", str(t), "--alerts", str(a), "--grace", "5", "--json", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == expected == json.loads(out.read_text())
    assert expected["attacks_detected"] == 1 and expected["false_alert_lines"] == 1

    res = _cli("--timeline", str(t), "--alerts", str(a))
    assert res.returncode == 0, res.stderr
    assert "TCP/IP DDoS SYN" in res.stdout and "false alerts/hour of benign time" in res.stdout
    assert "attacks detected 1/2, attributed 1/2, named 1/2" in res.stdout
    assert "1 non-alert lines skipped" in res.stdout

    with a.open("a") as f:
        f.write('{"event_type": "alert", "alert": {}}\n')
    res = _cli("--timeline", str(t), "--alerts", str(a), "--json")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == f"error: alerts {str(a)!r}, line 4: an alert event without 'timestamp'."
