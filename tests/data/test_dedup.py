from __future__ import annotations

import numpy as np
import polars as pl

from iomt_ids.data.dedup import count_label_conflicts, drop_cross_split, drop_duplicates
from iomt_ids.data.loader import LoadedData


def _data(rows: list[list[float | None]], labels: list[str]) -> LoadedData:
    table = pl.DataFrame(rows, schema=["a", "b"], orient="row")
    return LoadedData(table=table, labels=np.array(labels, dtype=object), captures=np.array(labels, dtype=object), release="v2")


def test_within_split_duplicates_need_same_features_and_label() -> None:
    d = _data([[1, 2], [1, 2], [1, 2], [3, None], [3, None]], ["A", "A", "B", "A", "A"])
    out, n = drop_duplicates(d)
    assert n == 2
    assert out.table.rows() == [(1, 2), (1, 2), (3, None)]
    assert list(out.labels) == ["A", "B", "A"]
    assert count_label_conflicts(d) == 1


def test_test_rows_seen_in_train_are_dropped_and_counted() -> None:
    train = _data([[1, 2], [3, None]], ["A", "A"])
    test = _data([[1, 2], [3, None], [5, 6], [1, 2]], ["B", "A", "A", "A"])
    out, n = drop_cross_split(train, test)
    assert n == 3
    assert out.table.rows() == [(5, 6)]
