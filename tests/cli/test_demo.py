"""The embedded demo end to end: shipped lab captures and features -> model -> report -> alerts."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from iomt_ids.workflows.demo import embedded_lab_dir

runner = CliRunner()
_register()


def test_embedded_lab_set_is_shipped_and_loadable() -> None:
    from iomt_ids.data.loader import load_split

    root = embedded_lab_dir()
    run1 = load_split(root / "run1")
    assert run1.release == "v2" and len(set(run1.labels)) == 19 and len(run1) > 10_000
    assert len(list((root / "captures").glob("*.pcap"))) == 3


def test_demo_runs_from_the_embedded_set(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--task", "2", "--epochs", "8", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "trained on lab run 1, tested on lab run 2" in res.output
    m = json.loads((out / "model" / "metrics.json").read_text())
    assert m["task"] == 2 and m["rows_test"] > 30_000 and m["macro_f1"] > 0.6
    assert "lab run 1" in m["split"]
    for f in ("report.md", "confusion_matrix.png", "training_curves.png", "bundle.json"):
        assert (out / "model" / f).exists()
    extracted = sorted(p.name for p in (out / "extracted").glob("*.csv"))
    assert extracted == ["Benign_lab.pcap.csv", "Recon-Port_Scan_lab.pcap.csv", "TCP_IP-DoS-SYN_lab.pcap.csv"]
    detection = json.loads((out / "detection.json").read_text())
    assert [d["packets"] for d in detection] == [6000, 12000, 12000]
    lines = [json.loads(ln) for ln in (out / "alerts.jsonl").read_text().splitlines()]
    lines = [a for a in lines if a["event_type"] != "stats"]
    assert lines and all(a["event_type"] == "alert" and a["alert"]["category"] == "Attack" for a in lines)
    # the printed counts add up: per-class figures are alerting windows, alert lines are what was written
    printed = [ln for ln in res.output.splitlines() if ln.startswith("detect ")]
    assert len(printed) == len(detection)
    for ln, d in zip(printed, detection, strict=True):
        assert f"{d['windows']} windows, {d['alerts_raw']} alerting windows {d['categories']}, " in ln
        assert ln.endswith(f"{d['alerts_emitted']} alert lines written")
        assert sum(d["categories"].values()) == d["alerts_raw"]
    assert sum(d["alerts_emitted"] for d in detection) == len(lines)
    # deployment on a shipped timeline of a ward the model never saw: adapted, it is quiet and still detects
    assert "deploy on unseen ward" in res.output
    dep = json.loads((out / "deploy" / "timeline-score.json").read_text())
    before, after = dep["unadapted"]["score"], dep["site"]["score"]
    assert before["false_alert_lines_per_hour"] > 50  # the unadapted model alerts on normal traffic
    assert after["false_alert_lines_per_hour"] <= before["false_alert_lines_per_hour"] / 10
    assert after["attacks_detected"] >= after["attacks"] - 1 and after["attacks"] == 8
    assert dep["site"]["detect"]["site_adapted"] and (out / "deploy" / "site" / "site.json").exists()


def test_shipped_timelines_are_two_different_wards() -> None:
    from iomt_ids.workflows.demo import embedded_timelines

    tls = embedded_timelines()
    assert [t.name for t in tls] == ["seed11", "seed22"]
    wards = [json.loads((t / "ward.json").read_text()) for t in tls]
    assert wards[0] != wards[1]
    for t in tls:
        assert (t / "calib.pcap.gz").stat().st_size > 10_000 and (
            t / "timeline.pcap.gz"
        ).stat().st_size > 100_000
