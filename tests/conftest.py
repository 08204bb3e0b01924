"""Shared fixtures: seeds, the path to ../shared data (skipped when absent), tiny synthetic datasets."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.features.schema import columns_for

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = SHARED / "data" / "ciciomt2024" / "v2" / "sample"
OFFICIAL_NAMES = SHARED / "data" / "ciciomt2024" / "official-file-names.txt"


@pytest.fixture(autouse=True)
def _seeds_fixed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real CICIoMT2024 v2 sample (../shared/data/ciciomt2024/v2/sample)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"real CICIoMT2024 sample not found at {SAMPLE} (only present beside the checkout in CI)")
    return SAMPLE


def synthetic_rows(release: str, n: int, label_shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """``n`` rows with the release's columns; ``label_shift`` moves some columns so classes differ."""
    rng = np.random.default_rng(seed)
    cols = columns_for(release)
    df = pd.DataFrame(rng.normal(size=(n, len(cols))) + label_shift, columns=list(cols))
    df["Number"] = 10.0
    df["Drate" if release == "v1" else "Number"] = 0.0 if release == "v1" else 10.0
    df["Rate"] = np.abs(df["Rate"]) * 100
    return df


def write_synthetic_dataset(
    root: Path,
    release: str = "v2",
    classes: tuple[str, ...] = ("Benign", "TCP_IP-DDoS-SYN", "ARP_Spoofing"),
    n_train: int = 120,
    n_test: int = 40,
) -> Path:
    """Write train/ and test/ folders of CSVs named like the dataset; class k is shifted by 3k."""
    for split, n in (("train", n_train), ("test", n_test)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for k, stem in enumerate(classes):
            idx = "1" if stem.startswith("TCP_IP") and split == "train" else ""
            seed = k + (100 if split == "test" else 0)
            synthetic_rows(release, n, label_shift=3.0 * k, seed=seed).to_csv(
                folder / f"{stem}{idx}_{split}.pcap.csv", index=False
            )
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_synthetic_dataset(tmp_path / "ds")
