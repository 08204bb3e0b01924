"""Evaluation protocols: shipped, capture-disjoint and stratified random splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iomt_ids.data.loader import load_dataset
from iomt_ids.data.protocols import apply_protocol, captures_per_class, pool
from iomt_ids.exceptions import ConfigError
from iomt_ids.workflows.train import prepare_splits
from tests.conftest import synthetic_rows


def _dataset(root: Path) -> Path:
    """Benign (one capture) and DDoS ICMP recorded in three captures, in train/ and test/."""
    for split, n in (("train", 60), ("test", 20)):
        folder = root / split
        folder.mkdir(parents=True)
        synthetic_rows("v2", n, 0.0, seed=1 if split == "train" else 2).to_csv(
            folder / f"Benign_{split}.pcap.csv", index=False
        )
        for i in (1, 2, 3):
            if split == "test" and i != 1:
                continue
            synthetic_rows("v2", n, 3.0 + i, seed=10 * i + (split == "test")).to_csv(
                folder / f"TCP_IP-DDoS-ICMP{i}_{split}.pcap.csv", index=False
            )
    return root


def test_shipped_keeps_the_folders(tmp_path: Path) -> None:
    splits = load_dataset(_dataset(tmp_path / "ds"))
    cut = apply_protocol(splits, "shipped")
    assert len(cut.splits.train) == 60 * 4 and len(cut.splits.test) == 40
    assert cut.capture_disjoint_classes == ()  # ICMP1 is on both sides


def test_capture_protocol_is_disjoint_for_multi_capture_classes_only(tmp_path: Path) -> None:
    splits = load_dataset(_dataset(tmp_path / "ds"))
    assert captures_per_class(pool(splits))["TCP/IP DDoS ICMP"] == [
        "TCP_IP-DDoS-ICMP1", "TCP_IP-DDoS-ICMP2", "TCP_IP-DDoS-ICMP3",
    ]  # fmt: skip
    for seed in range(4):
        cut = apply_protocol(splits, "capture", seed=seed)
        assert cut.capture_disjoint_classes == ("TCP/IP DDoS ICMP",)
        tr, te = cut.splits.train, cut.splits.test
        icmp_tr = set(tr.captures[tr.labels == "TCP/IP DDoS ICMP"])
        icmp_te = set(te.captures[te.labels == "TCP/IP DDoS ICMP"])
        assert icmp_te and icmp_tr and not icmp_tr & icmp_te
        assert icmp_te == set(cut.test_captures["TCP/IP DDoS ICMP"])
        # the single-capture class keeps its shipped split
        assert (tr.labels == "Benign").sum() == 60 and (te.labels == "Benign").sum() == 20
        assert "Benign" not in cut.capture_disjoint_classes and "single-capture" in cut.description


def test_random_protocol_is_stratified_seeded_and_dedup_still_counts(tmp_path: Path) -> None:
    splits = load_dataset(_dataset(tmp_path / "ds"))
    a = apply_protocol(splits, "random", seed=3, test_fraction=0.25)
    b = apply_protocol(splits, "random", seed=3, test_fraction=0.25)
    assert len(a.splits.test) == 70 and len(a.splits.train) == 210
    np.testing.assert_array_equal(a.splits.test.to_numpy(), b.splits.test.to_numpy())
    labels, counts = np.unique(a.splits.test.labels, return_counts=True)
    assert dict(zip(labels, counts, strict=True)) == {"Benign": 20, "TCP/IP DDoS ICMP": 50}
    # duplicated rows across the new split are removed and counted by the pipeline
    prepared = prepare_splits(a.splits, 2)
    assert prepared.dedup.cross_split >= 0 and len(prepared.test) <= 70


def test_unknown_protocol_and_bad_fraction_are_config_errors(tmp_path: Path) -> None:
    splits = load_dataset(_dataset(tmp_path / "ds"))
    with pytest.raises(ConfigError, match="protocol must be one of"):
        apply_protocol(splits, "kfold")
    with pytest.raises(ConfigError, match="test_fraction"):
        apply_protocol(splits, "random", test_fraction=1.5)


def test_capture_protocol_on_real_sample_covers_the_multi_capture_classes(sample_dir: Path) -> None:
    splits = load_dataset(sample_dir)
    cut = apply_protocol(splits, "capture", seed=0)
    assert set(cut.capture_disjoint_classes) == {"TCP/IP DDoS ICMP", "TCP/IP DDoS UDP"}
    prepared = prepare_splits(cut.splits, 19)
    te = prepared.test
    for label, held in cut.test_captures.items():
        assert set(te.captures[te.labels == label]) <= set(held)
