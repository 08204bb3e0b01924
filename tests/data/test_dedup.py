from __future__ import annotations

import numpy as np
import polars as pl

from iomt_ids.data.dedup import count_label_conflicts, drop_cross_split, drop_duplicates
from iomt_ids.data.loader import LoadedData


def _data(rows: list[list[float | None]], labels: list[str]) -> LoadedData:
    table = pl.DataFrame(rows, schema=["a", "b"], orient="row")
    return LoadedData(
        table=table,
        labels=np.array(labels, dtype=object),
        captures=np.array(labels, dtype=object),
        release="v2",
    )


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


def test_shared_row_hashes_give_the_same_answers_and_must_match_the_rows() -> None:
    import pytest

    from iomt_ids.data.dedup import first_occurrences, row_hashes, unseen_in

    train = _data([[1, 2], [1, 2], [1, 2], [3, None], [7, 8]], ["A", "A", "B", "A", "C"])
    test = _data([[1, 2], [9, 9], [3, None]], ["B", "A", "A"])
    h_train, h_test = row_hashes(train.table), row_hashes(test.table)
    assert first_occurrences(train, h_train).tolist() == first_occurrences(train).tolist() == [
        True, False, True, True, True,
    ]  # fmt: skip
    assert drop_duplicates(train, h_train)[1] == drop_duplicates(train)[1] == 1
    assert count_label_conflicts(train, h_train) == count_label_conflicts(train) == 1
    assert unseen_in(h_train, h_test).tolist() == [False, True, False]
    out, n = drop_cross_split(train, test, h_train, h_test)
    assert n == 2 and out.table.rows() == [(9, 9)]
    from iomt_ids.exceptions import ConfigError

    with pytest.raises(ConfigError, match="row hashes cover 3 rows; the data has 5"):
        first_occurrences(train, h_test)


def test_prepare_splits_counts_as_the_separate_steps(tmp_path) -> None:
    from iomt_ids.data.loader import load_dataset
    from iomt_ids.workflows.train import prepare_splits
    from tests.conftest import write_synthetic_dataset

    splits = load_dataset(write_synthetic_dataset(tmp_path / "ds"))
    # add duplicates within train, within test and across the two
    dup_train = splits.train.subset(np.r_[np.arange(len(splits.train)), [0, 1, 1]])
    dup_test = splits.test.subset(np.r_[np.arange(len(splits.test)), [2, 2]])
    cross = LoadedData(
        table=pl.concat([dup_test.table, dup_train.table.head(4)]),
        labels=np.r_[dup_test.labels, dup_train.labels[:4]],
        captures=np.r_[dup_test.captures, dup_train.captures[:4]],
        release=dup_test.release,
    )
    splits = type(splits)(train=dup_train, test=cross, train_dir=splits.train_dir, test_dir=splits.test_dir)
    prepared = prepare_splits(splits, 19)
    train, n_train = drop_duplicates(dup_train)
    test, n_test = drop_duplicates(cross)
    test, n_cross = drop_cross_split(train, test)
    assert (prepared.dedup.train_duplicates, prepared.dedup.test_duplicates, prepared.dedup.cross_split) == (
        n_train, n_test, n_cross,
    )  # fmt: skip
    assert n_train >= 3 and n_cross >= 4
    assert prepared.dedup.train_label_conflicts == count_label_conflicts(train)
    assert prepared.train.table.equals(train.table) and prepared.test.table.equals(test.table)


def test_feature_fingerprints_match_equal_rows_and_are_fixed_values() -> None:
    from iomt_ids.data.dedup import feature_fingerprints, in_sorted

    table = pl.DataFrame(
        {"a": [1.0, 1.0, None, float("nan"), -0.0, 0.0, 1.0], "b": [2.0, 2.0, 3.0, 3.0, 5.0, 5.0, 2.5]}
    )
    f = feature_fingerprints(table)
    assert f.dtype == np.uint64
    assert f[0] == f[1] and f[2] == f[3] and f[4] == f[5]  # equal values; missing alike; -0.0 as 0.0
    assert len(set(f[[0, 2, 4, 6]].tolist())) == 4
    assert feature_fingerprints(table, ["b", "a"])[0] != f[0]  # column order is part of the row
    # the record in a bundle must mean the same in every later version: pin one value
    one = pl.DataFrame({"a": [1.0], "b": [None]}, schema={"a": pl.Float64, "b": pl.Float64})
    assert feature_fingerprints(one).tolist() == [2179856636774172199]
    record = np.unique(f[:2])
    assert in_sorted(record, f).tolist() == [True, True, False, False, False, False, False]
    assert in_sorted(np.array([], dtype=np.uint64), f).tolist() == [False] * 7
