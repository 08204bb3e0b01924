"""Seeded, stratified train/validation split (the papers' 20 % validation split)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from iomt_ids.exceptions import ConfigError

__all__ = ["stratified_split"]


def stratified_split(y: np.ndarray, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) with ``fraction`` of every class in validation.

    Classes with fewer than 2 rows cannot be stratified; they stay in train.

    >>> tr, va = stratified_split(np.array([0] * 10 + [1] * 10), 0.2, seed=0)
    >>> len(tr), len(va)
    (16, 4)
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1); got {fraction!r} instead.")
    y = np.asarray(y)
    idx = np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    rare = np.isin(y, classes[counts < 2])
    pool = idx[~rare]
    tr, va = train_test_split(pool, test_size=fraction, random_state=seed, stratify=y[pool])
    return np.sort(np.concatenate([tr, idx[rare]])), np.sort(va)
