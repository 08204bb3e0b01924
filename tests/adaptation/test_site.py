"""adapt -> SITE_DIR -> detect, on real lab traffic: quiet on held-out normal traffic, loud on attacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.adaptation.site import load_site
from iomt_ids.artifacts import load_bundle
from iomt_ids.detection import DetectConfig, Detector, JsonLinesSink, run_detection
from iomt_ids.detection.site import SiteDetector, load_detector
from iomt_ids.detection.sources import PcapSource
from iomt_ids.exceptions import BundleError, ConfigError

ATTACKER = "10.77.0.101"  # att1 of the lab's default topology


def _detect(model_dir: Path, pcap: Path, out: Path) -> tuple[dict, list[dict]]:
    det = load_detector(model_dir)
    sink = JsonLinesSink(out, append=False)
    try:
        summary = run_detection(PcapSource(pcap), det, [sink], DetectConfig(fold_seconds=60))
    finally:
        sink.close()
    events = [json.loads(x) for x in out.read_text().splitlines()]
    return summary.to_dict(), [e for e in events if e["event_type"] == "alert"]


def test_adapt_writes_a_checked_site_bundle(site_dir: Path, lab_model: Path) -> None:
    meta = json.loads((site_dir / "site.json").read_text())
    assert meta["format"] == "iomt-ids-site/1" and meta["base"]["version"] == load_bundle(lab_model).version
    for w in ("10", "100"):
        s = meta["streams"][w]
        assert s["windows"] > 0 and s["threshold"] > 0 and 0 < s["alpha_bound"] <= 0.5
        # the stated bound is the certified rate times the calibration traffic's window rate
        assert s["false_alarms_per_hour_bound"] == pytest.approx(
            s["alpha_bound"] * s["windows_per_hour"], abs=0.01
        )
    recall = meta["validation_recall"]
    assert recall["before"]["rows"] == recall["after"]["rows"] > 1000
    assert recall["attack_recall_drop"] == pytest.approx(
        recall["before"]["attack_recall"] - recall["after"]["attack_recall"], abs=1e-4
    )
    assert meta["finetune"]["method"].startswith("continued training") and meta["finetune"]["site_rows"] > 0
    f = meta["calibration_windows_called_attack"]
    assert f["classifier"] <= f["base"]  # fine-tuning taught it the site's normal traffic
    assert (site_dir / "adapt-report.md").read_text().count("| W = ") == 2
    assert (site_dir / "novelty_W10.png").stat().st_size > 5000
    site = load_site(site_dir)
    assert site.version == meta["version"] and site.windows == (10, 100)


def test_quiet_on_held_out_normal_traffic_where_the_base_model_is_not(
    site_dir: Path, lab_model: Path, benign_split: dict[str, Path], tmp_path: Path
) -> None:
    base, _ = _detect(lab_model, benign_split["holdout"], tmp_path / "base.jsonl")
    site, alerts = _detect(site_dir, benign_split["holdout"], tmp_path / "site.jsonl")
    assert site["windows"] == base["windows"] > 200
    assert site["site_adapted"] and not base["site_adapted"]
    assert site["alerts_raw"] <= max(1, base["alerts_raw"] // 20), (site, base["alerts_raw"])
    assert site["alerts_raw"] <= 0.01 * site["windows"]
    assert site["novel_windows"] <= 0.02 * site["windows"]


@pytest.mark.parametrize(("capture", "family"), [("Recon-Port_Scan", "RECON"), ("TCP_IP-DoS-SYN", "DoS")])
def test_loud_attributed_and_named_on_attacks(
    site_dir: Path, lab_root: Path, capture: str, family: str, tmp_path: Path
) -> None:
    summary, alerts = _detect(site_dir, lab_root / "captures" / f"{capture}_lab.pcap", tmp_path / "a.jsonl")
    assert summary["alerts_raw"] >= 0.5 * summary["windows"], summary
    by_src = Counter()
    for a in alerts:
        by_src[a["src_ip"]] += a["alert"]["count"]
        assert a["alert"]["model_version"].startswith("site-") and a["alert"]["novelty"] > 1.0
        meta = a["alert"]["metadata"]  # Suricata rule-metadata shape: an object of string lists
        assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in meta.values())
        assert (
            meta["detector"] == ["ml"]
            and meta["site"] == [a["alert"]["model_version"]]
            and meta["task"] == ["6"]
        )
        assert len(meta["explanation"]) == 3 and all(
            "sd from the site's normal" in e for e in meta["explanation"]
        )
    assert by_src.most_common(1)[0][0] == ATTACKER, by_src
    votes = Counter()
    for a in alerts:
        votes[a["alert"]["category"]] += a["alert"]["count"]
    assert votes.most_common(1)[0][0] == family, votes


def test_tampered_or_swapped_files_are_refused(site_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site_dir, copy)
    npz = copy / "novelty.npz"
    data = bytearray(npz.read_bytes())
    data[-100] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256 .* does not match site.json"):
        load_site(copy)
    shutil.copy(site_dir / "novelty.npz", npz)
    meta = json.loads((copy / "site.json").read_text())
    meta["classifier"]["version"] = "gru_dnn-6c-000000000000"
    (copy / "site.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="is not the classifier gru_dnn-6c-000000000000"):
        load_site(copy)
    (copy / "site.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_site(copy)


def test_a_window_stream_without_a_baseline_is_refused(site_dir: Path, lab_root: Path) -> None:
    det = load_detector(site_dir)
    assert isinstance(det, SiteDetector)
    with pytest.raises(ConfigError, match=r"baselines for W = \[10, 100\]; cannot score W = \[50\]"):
        run_detection(
            PcapSource(lab_root / "captures" / "Benign_lab.pcap"), det, [], DetectConfig(windows=(50,))
        )


def test_plain_bundle_loads_as_a_plain_detector(lab_model: Path) -> None:
    det = load_detector(lab_model)
    assert type(det) is Detector and not det.site_adapted


def test_adapt_without_replay_data_says_how_to_fix_it(
    lab_model: Path, benign_split: dict, tmp_path: Path
) -> None:
    from iomt_ids.workflows.adapt import AdaptConfig, adapt_site

    moved = tmp_path / "model"
    shutil.copytree(lab_model, moved)
    meta = json.loads((moved / "bundle.json").read_text())
    meta["data"] = {"path": str(tmp_path / "gone")}
    (moved / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="--replay-data DIR .* or --no-finetune"):
        adapt_site(
            AdaptConfig(model=moved, out=tmp_path / "s", benign=(benign_split["calib"],), progress=False)
        )
    with pytest.raises(ConfigError, match="at least one benign capture"):
        AdaptConfig(model=moved, out=tmp_path / "s")


def test_cli_adapt_from_feature_csvs_and_detect_prints_its_guarantees(
    lab_model: Path, benign_split: dict[str, Path], lab_root: Path, tmp_path: Path
) -> None:
    exe = [sys.executable, "-c", "from iomt_ids.cli import main; main()"]
    csv = tmp_path / "calib.pcap.csv"
    res = subprocess.run([*exe, "extract", str(benign_split["calib"]), "-w", "10", "-o", str(csv)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    site = tmp_path / "site"
    res = subprocess.run(
        [*exe, "adapt", "--model", str(lab_model), "--benign-csv", str(csv), "--window", "10", "--out", str(site),
         "--no-finetune", "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "W=10:" in res.stdout and "classifier: none (--no-finetune)" in res.stdout
    meta = json.loads((site / "site.json").read_text())
    assert list(meta["streams"]) == ["10"] and meta["calibration"]["seconds"] > 10
    res = subprocess.run(
        [*exe, "detect", "--model", str(site), "--pcap", str(lab_root / "captures" / "TCP_IP-DoS-SYN_lab.pcap"),
         "--window", "10", "--alerts", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "novelty threshold" in res.stdout and "alert = novel AND P(attack) >= 0.5" in res.stdout
    events = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert any(e["event_type"] == "alert" for e in events) and events[-1]["stats"]["detect"]["site_adapted"]
    res = subprocess.run([*exe, "detect", "--model", str(site), "--pcap", str(benign_split["holdout"])],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 2 and "cannot score W = [100]" in res.stderr


def test_novelty_is_recorded_on_every_site_alert(site_dir: Path, lab_root: Path) -> None:
    det = load_detector(site_dir)
    from iomt_ids.features import extract_file

    rows, _ = extract_file(lab_root / "captures" / "TCP_IP-DoS-SYN_lab.pcap", window=100, progress=False)
    proba = det.score_many(rows)
    v = det.verdicts(rows, 100, proba)
    assert v.novelty is not None and np.array_equal(v.is_alert, (v.novelty > 1) & (v.is_alert))
    assert set(v.category[v.is_alert]) <= set(det.classes) | {"ANOMALY"}


def test_persistence_needs_several_novel_windows_close_in_time(site_dir: Path) -> None:
    det = load_detector(site_dir)
    assert det.site.policy.min_novel == 3 and det.site.policy.persist_seconds == 5.0
    novel = np.array([True, False, True, True, True, False, True, True, True])
    times = np.array([0.0, 1.0, 2.0, 20.0, 21.0, 22.0, 40.0, 40.1, 40.2])
    # window 4 (t=21): novel at 20 and 21 and 2 -> 2 is too old; window 8 (t=40.2): 40, 40.1, 40.2 -> ok
    got = det._persistent(10, novel, times)
    assert got.tolist() == [False, False, False, False, False, False, False, False, True]
    # state carries over batches: two more novel windows within 5 s of the last ones pass at once
    assert det._persistent(10, np.array([True]), np.array([41.0])).tolist() == [True]
    det.reset_state()
    assert det._persistent(10, np.array([True]), np.array([41.5])).tolist() == [False]


def test_explanations_name_the_features_that_moved(site_dir: Path, lab_root: Path) -> None:
    """A SYN flood's windows deviate from the ward's normal traffic most in SYN share, rate and timing."""
    from iomt_ids.features import extract_file

    det = load_detector(site_dir)
    rows, _ = extract_file(lab_root / "captures" / "TCP_IP-DoS-SYN_lab.pcap", window=10, progress=False)
    expl = det.explain(rows.iloc[200:260], 10)
    assert len(expl) == 60 and all(len(e) == 3 for e in expl)
    named = Counter(e.split("=")[0] for row in expl for e in row)
    flood_cols = {"syn_flag_number", "ack_flag_number", "Rate", "IAT", "Header_Length", "psh_flag_number"}
    assert sum(n for c, n in named.items() if c in flood_cols) >= 0.5 * 180, named
    # stable: the same windows give the same explanation
    assert det.explain(rows.iloc[200:260], 10) == expl


def test_novelty_beside_the_classifier_changes_no_alert(
    site_dir: Path, lab_root: Path, tmp_path: Path
) -> None:
    """On two CPUs the novelty search runs on its own thread while the classifier scores; same alerts."""
    import threading

    from iomt_ids.runtime import usable_cpus

    pcap = lab_root / "captures" / "TCP_IP-DoS-SYN_lab.pcap"
    lines: dict[bool, list[dict]] = {}
    threads: dict[bool, set[str]] = {}
    for overlap in (False, True):
        det = load_detector(site_dir)
        det.overlap_novelty = overlap
        seen: set[str] = set()
        real = det.novelty

        def novelty(features, window, real=real, seen=seen):  # type: ignore[no-untyped-def]
            seen.add(threading.current_thread().name)
            return real(features, window)

        det.novelty = novelty  # type: ignore[method-assign]
        out = tmp_path / f"overlap{int(overlap)}.jsonl"
        sink = JsonLinesSink(out, append=False)
        try:
            run_detection(PcapSource(pcap), det, [sink], DetectConfig(fold_seconds=60))
        finally:
            sink.close()
        events = [json.loads(x) for x in out.read_text().splitlines()]
        lines[overlap] = [
            {k: v for k, v in e.items() if k != "timestamp"} for e in events if e["event_type"] == "alert"
        ]
        threads[overlap] = seen
    assert lines[True] and lines[True] == lines[False]
    assert threads[False] == {threading.current_thread().name}
    if usable_cpus() >= 2:
        assert "iomt-novelty" in {t.split("_")[0] for t in threads[True]}
