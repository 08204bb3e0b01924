"""Fixtures of the export tests: small bundles trained on real sample rows (one per model, per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.data.loader import load_split
from iomt_ids.workflows import fit_bundle

ROWS_PER_CLASS = 60


@pytest.fixture(scope="session")
def sample_rows(sample_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Up to 60 real train-sample rows per class (19 classes) and 30 each with empty Std / inf Rate, raw."""
    data = load_split(sample_dir / "train")
    frame = data.frame
    per_class = [np.flatnonzero(data.labels == lab)[:ROWS_PER_CLASS] for lab in sorted(set(data.labels))]
    special = [  # rows with empty Std and with Rate = inf, so that both policies are exercised
        np.flatnonzero(frame["Std"].isna().to_numpy())[:30],
        np.flatnonzero(np.isinf(frame["Rate"].to_numpy()))[:30],
    ]
    idx = np.unique(np.concatenate([*per_class, *special]))
    return frame.iloc[idx].reset_index(drop=True), data.labels[idx]


@pytest.fixture(scope="session")
def bundle_dir(
    sample_rows: tuple[pd.DataFrame, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``bundle_dir(model)``: a saved 6-class bundle of ``model`` trained 2 epochs (cached per session)."""
    cache: dict[str, Path] = {}

    def make(model: str) -> Path:
        if model not in cache:
            frame, labels = sample_rows
            torch.manual_seed(0)
            bundle, _ = fit_bundle(frame, labels, task=6, model=model, epochs=2, seed=0, device="cpu")
            cache[model] = bundle.save(tmp_path_factory.mktemp(f"bundle-{model}"))
        return cache[model]

    return make


@pytest.fixture
def loaded(bundle_dir: Callable[[str], Path]) -> Callable[[str], ModelBundle]:
    return lambda model: load_bundle(bundle_dir(model))
