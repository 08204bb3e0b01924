"""Duplicate removal: within a split, and test rows that also occur in train.

These change rows, not columns, so they are plain functions called before any
fitting (scikit-learn's transformers only change columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from iomt_ids.data.loader import LoadedData

__all__ = ["DedupReport", "drop_cross_split", "drop_duplicates"]

_LABEL = "__label__"
_ROW = "__row__"


@dataclass(frozen=True)
class DedupReport:
    """What de-duplication removed.

    Attributes
    ----------
    train_duplicates: train rows identical (features and label) to an earlier train row.
    test_duplicates: the same within test.
    cross_split: test rows whose features equal a train row's (a train/test leak), removed from test.
    train_label_conflicts: distinct train feature vectors that occur under more than one label.
    """

    train_duplicates: int = 0
    test_duplicates: int = 0
    cross_split: int = 0
    train_label_conflicts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "train": self.train_duplicates,
            "test": self.test_duplicates,
            "cross_split": self.cross_split,
            "train_label_conflicts": self.train_label_conflicts,
        }


def drop_duplicates(data: LoadedData) -> tuple[LoadedData, int]:
    """Drop rows identical to an earlier row (features and label); keep the first.

    Returns the de-duplicated data and the number of rows dropped.
    """
    keyed = data.table.with_columns(
        pl.Series(_LABEL, data.labels.astype(str)), pl.int_range(pl.len()).alias(_ROW)
    )
    keep = keyed.unique(subset=[*data.columns, _LABEL], keep="first", maintain_order=True)[_ROW].to_numpy()
    return data.subset(keep), len(data) - len(keep)


def count_label_conflicts(data: LoadedData) -> int:
    """Number of distinct feature vectors that carry more than one label."""
    keyed = data.table.with_columns(pl.Series(_LABEL, data.labels.astype(str)))
    per_vector = keyed.group_by(list(data.columns)).agg(pl.col(_LABEL).n_unique().alias("n"))
    return int((per_vector["n"] > 1).sum())


def drop_cross_split(train: LoadedData, test: LoadedData) -> tuple[LoadedData, int]:
    """Drop test rows whose feature vector also occurs in train (whatever the label).

    Returns the filtered test data and the number of rows dropped.
    """
    cols = list(test.columns)
    keyed = test.table.with_columns(pl.int_range(pl.len()).alias(_ROW))
    kept = keyed.join(train.table.unique(), on=cols, how="anti", nulls_equal=True, maintain_order="left")
    keep = np.sort(kept[_ROW].to_numpy())
    return test.subset(keep), len(test) - len(keep)
