"""Detector steps: score_one and score_many agree, classify and its threshold, alerts from windows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.artifacts import ModelBundle
from iomt_ids.detection.detector import Detector, classify
from iomt_ids.exceptions import BundleError, ConfigError, SchemaError
from iomt_ids.features.extract import extract_file
from iomt_ids.features.packets import read_capture
from iomt_ids.features.windows import WindowBatch, WindowExtractor
from tests.detection import traffic
from tests.detection.conftest import FLOOD_CLASS


def _windows(path: Path, w: int) -> WindowBatch:
    ex = WindowExtractor(window=w)
    parts = [ex.feed_batch(b) for b in read_capture(path)]
    return WindowBatch.concat([*parts, ex.flush()])


def test_score_one_and_score_many_agree(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    rows, _ = extract_file(pcaps["mixed"], window=10, progress=False)
    det = Detector(bundle)
    many = det.score_many(rows)
    assert many.shape == (len(rows), len(bundle.classes))
    np.testing.assert_allclose(many.sum(axis=1), 1.0, rtol=1e-5)
    for i in list(range(0, len(rows), 37)) + [len(rows) - 1]:
        row = rows.iloc[i]
        np.testing.assert_allclose(det.score_one(row), many[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(det.score_one(row.to_dict()), many[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(det.score_one(row.to_numpy()), many[i], rtol=1e-5, atol=1e-6)


def test_score_one_missing_column_is_named(bundle: ModelBundle) -> None:
    with pytest.raises(SchemaError, match="Rate"):
        Detector(bundle).score_one({c: 0.0 for c in bundle.input_columns if c != "Rate"})


def test_classify_attack_probability_and_category() -> None:
    classes = ["Benign", "DoS", "DDoS", "RECON"]
    proba = np.array(
        [
            [0.95, 0.02, 0.02, 0.01],  # benign
            [0.50, 0.10, 0.30, 0.10],  # exactly at 0.5: alert
            [0.10, 0.20, 0.30, 0.40],  # RECON most probable attack
            [0.40, 0.55, 0.05, 0.00],
        ]
    )
    v = classify(proba, classes, threshold=0.5)
    np.testing.assert_allclose(v.score, [0.05, 0.5, 0.9, 0.6])
    assert v.is_alert.tolist() == [False, True, True, True]
    assert v.category.tolist() == ["DoS", "DDoS", "RECON", "DoS"]
    assert classify(proba, classes, threshold=0.7).is_alert.tolist() == [False, False, True, False]
    assert classify(proba, classes, threshold=1.0).is_alert.tolist() == [False, False, False, False]


def test_classify_benign_not_first_and_bad_inputs() -> None:
    v = classify(np.array([[0.3, 0.7]]), ["Attack", "Benign"], threshold=0.3)
    assert v.is_alert.tolist() == [True] and v.category.tolist() == ["Attack"]
    with pytest.raises(BundleError, match="Benign"):
        classify(np.array([[0.5, 0.5]]), ["A", "B"])
    with pytest.raises(SchemaError, match="shape"):
        classify(np.zeros((2, 3)), ["Benign", "A"])
    for bad in (0.0, -0.1, 1.5, True):
        with pytest.raises(ConfigError, match="threshold"):
            classify(np.zeros((1, 2)), ["Benign", "A"], threshold=bad)  # type: ignore[arg-type]


def test_threshold_alerts_are_nested(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    wb = _windows(pcaps["mixed"], 10)
    det = Detector(bundle)
    proba = det.score_many(wb.features)
    counts = []
    for t in (0.05, 0.5, 0.9, 0.999, 1.0):
        alerts = Detector(bundle, threshold=t).alerts(wb, window=10, proba=proba)
        counts.append(len(alerts))
        assert all(a.score >= t - 1e-9 for a in alerts)
    assert counts == sorted(counts, reverse=True)
    assert counts[1] > 0  # the flood alerts at the default threshold
    assert counts[-1] <= counts[1] < len(wb)  # not everything alerts


def test_alerts_from_windows_carry_the_dominant_flow(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    wb = _windows(pcaps["mixed"], 100)
    alerts = Detector(bundle).alerts(wb, window=100)
    assert alerts, "the SYN flood should alert"
    assert {a.category for a in alerts} == {FLOOD_CLASS}
    flood = [a for a in alerts if a.src_ip == traffic.FLOODER]
    assert len(flood) >= 0.9 * len(alerts)
    a = flood[0]
    assert (a.dest_ip, a.dest_port, a.proto, a.window, a.window_packets) == (
        traffic.VICTIM,
        traffic.VICTIM_PORT,
        "TCP",
        100,
        100,
    )
    assert a.window_start is not None and a.window_start <= a.timestamp
    assert a.model == bundle.model_name and a.model_version == bundle.version


def test_benign_traffic_raises_few_alerts(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    wb = _windows(pcaps["benign"], 10)
    alerts = Detector(bundle).alerts(wb, window=10)
    assert len(alerts) <= 0.02 * len(wb)


def test_bundle_without_benign_is_refused(bundle: ModelBundle) -> None:
    other = replace(bundle, classes=tuple(c if c != "Benign" else "Normal" for c in bundle.classes))
    with pytest.raises(BundleError, match="Benign"):
        Detector(other)


def test_batched_explanations_equal_per_alert_ones(bundle: ModelBundle, pcaps: dict[str, Path]) -> None:
    """Explanations computed in one call per batch (deferred) are those of one call per alert."""
    wb = _windows(pcaps["mixed"], 10)
    det = Detector(bundle)
    rows = det.alert_rows(wb, window=10)
    assert len(rows) >= 3
    picks = [0, len(rows) // 2, len(rows) - 1]
    one_by_one = [rows.alert(i).extra["metadata"]["explanation"] for i in picks]
    calls: list[int] = []
    explainer = rows.explainer
    assert explainer is not None

    def counting(frame):  # type: ignore[no-untyped-def]
        calls.append(len(frame))
        return explainer(frame)

    rows.explainer = counting
    deferred = [rows.alert(i, defer=True) for i in picks]
    assert all("explanation" not in a.extra["metadata"] for a in deferred)  # not computed yet
    rows.explain_pending()
    assert calls == [len(picks)]  # one explainer call for the three alerts
    assert [a.extra["metadata"]["explanation"] for a in deferred] == one_by_one
    rows.explain_pending()  # nothing pending: no call
    assert calls == [len(picks)]
