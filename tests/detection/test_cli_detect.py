"""``iomt-ids detect`` through Typer's CliRunner on known pcaps, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from tests.detection import traffic
from tests.detection.conftest import FLOOD_CLASS

runner = CliRunner()
_register()


def test_detect_pcap_writes_alerts_and_summary(
    bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    res = runner.invoke(
        app, ["detect", "--model", str(bundle_dir), "--pcap", str(pcaps["mixed"]), "--alerts", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "detect summary (end of input)" in res.output
    assert "W=10: 531, W=100: 53" in res.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    events = [e for e in lines if e["event_type"] == "alert"]
    stats = [e for e in lines if e["event_type"] == "stats"]
    # a flood in most windows of an unadapted model: the fit warning is said once, in the stats lines too
    assert stats and stats[-1]["stats"]["detect"]["windows"] == 531 + 53
    assert any("not adapted to this network" in w for w in stats[-1]["stats"]["detect"]["warnings"])
    # the stats line written when the warning fired counts what was seen up to then
    assert 0 < stats[0]["stats"]["detect"]["alerts_raw"] <= stats[-1]["stats"]["detect"]["alerts_raw"]
    assert stats[0]["stats"]["detect"]["accepted"] > 0
    assert res.output.count("not adapted to this network") <= 2  # log line + summary table, not per batch
    assert [e["alert"].get("summary", False) for e in events] == [False, True]
    assert {e["src_ip"] for e in events} == {traffic.FLOODER}
    assert (
        events[0]["alert"]["category"] == FLOOD_CLASS and events[0]["alert"]["severity"] == 2
    )  # one source: DoS


def test_detect_alerts_to_stdout_unfolded_single_window(bundle_dir: Path, pcaps: dict[str, Path]) -> None:
    res = runner.invoke(
        app,
        ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["mixed"]), "--alerts", "-", "--window", "100",
         "--fold-seconds", "0", "--threshold", "0.9", "-q"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event_type"] == "stats"
    events = [e for e in events if e["event_type"] == "alert"]
    assert len(events) >= 20
    assert all(e["alert"]["window"] == 100 and e["alert"]["score"] >= 0.9 for e in events)
    assert "detect summary" not in res.stdout  # the summary goes to stderr when alerts take stdout
    assert "detect summary" in res.output


def test_detect_max_packets(bundle_dir: Path, pcaps: dict[str, Path]) -> None:
    res = runner.invoke(
        app, ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["benign"]), "--max-packets", "1000", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "detect summary (max packets)" in res.output and "1,000" in res.output


def test_bad_inputs_exit_2_with_a_message(bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path) -> None:
    pcap = str(pcaps["benign"])
    cases = [
        (["--model", str(tmp_path / "no-run"), "--pcap", pcap], "no-run: model bundle folder does not exist"),
        (["--model", str(bundle_dir)], "exactly one input, --pcap FILE or --interface IF; got neither"),
        (["--model", str(bundle_dir), "--pcap", pcap, "--interface", "lo"], "got both"),
        (["--model", str(bundle_dir), "--pcap", str(tmp_path / "missing.pcap")], "missing.pcap"),
        (["--model", str(bundle_dir), "--pcap", str(bundle_dir)], "is a folder"),
        (
            ["--model", str(bundle_dir), "--pcap", pcap, "--threshold", "0"],
            "threshold must be a number in (0, 1]",
        ),
        (["--model", str(bundle_dir), "--pcap", pcap, "--window", "10", "--window", "10"], "must not repeat"),
    ]
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    cases.append((["--model", str(bundle_dir), "--pcap", str(junk)], "junk.pcap"))
    for args, message in cases:
        res = runner.invoke(app, ["detect", *args])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output


def test_detect_explains_written_alerts_unless_told_not_to(
    bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    for flag, expect in (("--explain", True), ("--no-explain", False)):
        out = tmp_path / f"alerts{flag}.jsonl"
        res = runner.invoke(app, ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["mixed"]), "--alerts",
                                  str(out), "-q", flag])  # fmt: skip
        assert res.exit_code == 0, res.output
        alerts = [e for e in map(json.loads, out.read_text().splitlines()) if e["event_type"] == "alert"]
        assert alerts
        for a in alerts:
            meta = a["alert"]["metadata"]
            assert meta["detector"] == ["ml"] and meta["task"] == ["19"]
            assert ("explanation" in meta) is expect
            if expect:  # "feature=value (+contribution)", top 3
                assert len(meta["explanation"]) == 3 and all(
                    "=" in e and "(" in e for e in meta["explanation"]
                )


def test_summary_says_which_count_is_windows_and_which_is_lines(
    bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    import re

    args = ["detect", "--model", str(bundle_dir), "--pcap", str(pcaps["mixed"])]
    res = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "alerts (written, folded)" not in res.output and "alert lines written" not in res.output
    assert "alert lines (folded; not written: no --alerts)" in res.output
    raw = int(re.search(r"alerting windows\s*│\s*([\d,]+)", res.output).group(1).replace(",", ""))
    lines, folded = (
        int(g.replace(",", ""))
        for g in re.search(
            r"not written: no --alerts\)\s*│\s*([\d,]+) \(([\d,]+) windows folded\)", res.output
        ).groups()
    )
    assert 0 < lines < raw and lines + folded >= raw
    out = tmp_path / "alerts.jsonl"
    res = runner.invoke(app, [*args, "--alerts", str(out)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    written = [json.loads(ln) for ln in out.read_text().splitlines()]
    n_written = sum(e["event_type"] == "alert" for e in written)
    assert re.search(rf"alert lines written \(folded\)\s*│\s*{n_written:,} \(", res.output), res.output
