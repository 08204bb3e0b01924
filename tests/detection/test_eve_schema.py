"""Strict EVE: every alert line of a detection run validates against the rules of Suricata's EVE schema.

The JSON Schema below is written from what Suricata's ``etc/schema.json`` states for alert events (it is
not a copy): the top-level keys an event may have, none other; ``timestamp`` as Suricata writes it;
``flow_id`` a 64-bit integer; ``alert`` with Suricata's keys only, and ``alert.metadata`` as rule metadata,
an object of string lists. On top, what iomt-ids promises in it: ``detector: ["ml"]``, model, version, task.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from iomt_ids.detection.alerts import Alert

runner = CliRunner()
_register()

STRING_LIST = {"type": "array", "items": {"type": "string"}}
EVE_ALERT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["timestamp", "event_type", "src_ip", "dest_ip", "proto", "alert"],
    "properties": {
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000$"},
        "flow_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "event_type": {"const": "alert"},
        "src_ip": {"type": "string"},
        "src_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "dest_ip": {"type": "string"},
        "dest_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "proto": {"type": "string"},
        "app_proto": {"type": "string"},
        "alert": {
            "type": "object",
            "required": [
                "action",
                "gid",
                "signature_id",
                "rev",
                "signature",
                "category",
                "severity",
                "metadata",
            ],
            "properties": {
                "action": {"type": "string"},
                "gid": {"type": "integer"},
                "signature_id": {"type": "integer"},
                "rev": {"type": "integer"},
                "signature": {"type": "string"},
                "category": {"type": "string"},
                "severity": {"type": "integer", "minimum": 1, "maximum": 3},
                "metadata": {
                    "type": "object",
                    "additionalProperties": STRING_LIST,
                    "required": ["detector", "model", "model_version", "task"],
                    "properties": {"detector": {"const": ["ml"]}},
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
VALIDATOR = jsonschema.Draft202012Validator(EVE_ALERT_SCHEMA)


def test_the_schema_itself_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(EVE_ALERT_SCHEMA)


def test_every_strict_alert_line_of_a_run_validates(
    bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "eve.json"
    res = runner.invoke(app, ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["mixed"]), "--alerts", str(out),
                              "--eve", "strict", "--fold-seconds", "5", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) >= 2 and all(e["event_type"] == "alert" for e in lines)  # no stats lines in strict mode
    for e in lines:
        errors = sorted(VALIDATOR.iter_errors(e), key=str)
        assert not errors, (e, [x.message for x in errors])
        meta = e["alert"]["metadata"]
        assert (
            int(meta["count"][0]) >= 1
            and 0.0 <= float(meta["score"][0]) <= 1.0
            and meta["window"][0] in ("10", "100")
        )
    assert any(
        int(e["alert"]["metadata"]["count"][0]) > 1 for e in lines
    )  # folded summaries keep their count


def test_extended_lines_do_not_pass_the_strict_schema(
    bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    """The check can fail: the default (extended) lines carry iomt-ids' own keys in ``alert``."""
    out = tmp_path / "eve.json"
    res = runner.invoke(app, ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["mixed"]), "--alerts", str(out),
                              "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    alerts = [json.loads(x) for x in out.read_text().splitlines() if '"event_type":"alert"' in x]
    assert alerts and all(any(True for _ in VALIDATOR.iter_errors(e)) for e in alerts)


def test_a_site_alert_in_strict_shape_validates() -> None:
    a = Alert(
        timestamp=1_767_225_600.25, window_id=5, window=100, category="ANOMALY", score=0.2, src_ip="10.77.0.9",
        dest_ip="10.77.0.30", proto="ICMP", model="gru_dnn", model_version="site-abc", window_start=1_767_225_600.0,
        window_packets=100, extra={"novelty": 4.2, "metadata": {"detector": ["ml"], "model": ["gru_dnn"],
        "model_version": ["site-abc"], "task": ["6"], "site": ["site-abc"], "explanation": ["Rate=10 (+3.0 sd)"]}},
        strict=True,
    )  # fmt: skip
    e = json.loads(a.to_json())
    assert not list(VALIDATOR.iter_errors(e))
    assert e["alert"]["metadata"]["novelty"] == ["4.2"] and "src_port" not in e


@pytest.mark.parametrize("bad", ["2026-12-01T10:00:00.123456+00:00", "2026-12-01T10:00:00Z"])
def test_timestamps_not_written_like_suricata_are_refused(bad: str) -> None:
    e = json.loads(Alert(timestamp=0.0, window_id=0, window=10, category="RECON", score=1.0, src_ip="a", dest_ip="b",
                         proto="TCP", extra={"metadata": {"detector": ["ml"], "model": ["m"], "model_version": ["v"],
                                                          "task": ["6"]}}, strict=True).to_json())  # fmt: skip
    assert not list(VALIDATOR.iter_errors(e))
    e["timestamp"] = bad
    assert list(VALIDATOR.iter_errors(e))
