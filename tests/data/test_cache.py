"""The one-query CSV read equals the file-by-file read, and the Arrow cache returns the same data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from iomt_ids.data.cache import CACHE_ENV, cache_key, default_cache_dir, resolve_cache
from iomt_ids.data.labels import parse_file_name
from iomt_ids.data.loader import find_csv_files, load_csv_files, load_dataset, load_split, read_rows
from tests.conftest import write_synthetic_dataset


def _same(a: object, b: object) -> None:
    assert a.table.equals(b.table)  # type: ignore[attr-defined]
    assert np.array_equal(a.labels, b.labels)  # type: ignore[attr-defined]
    assert np.array_equal(a.captures, b.captures)  # type: ignore[attr-defined]
    assert a.release == b.release and a.rows_per_file == b.rows_per_file  # type: ignore[attr-defined]


def test_fast_read_equals_file_by_file(sample_dir: Path) -> None:
    files = find_csv_files(sample_dir / "train")
    data = load_csv_files(files, cache=False)
    parts = [read_rows(f)[0] for f in files]
    assert data.table.equals(pl.concat(parts))
    want = np.concatenate([[parse_file_name(f).label] * len(p) for f, p in zip(files, parts, strict=True)])
    assert np.array_equal(data.labels, want)
    assert data.rows_per_file == {f.name: len(p) for f, p in zip(files, parts, strict=True)}
    assert data.table["Std"].null_count() >= 1 and np.isinf(data.table["Rate"].to_numpy()).any()


def test_nan_literal_becomes_missing_as_an_empty_cell(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, n_train=5, n_test=2)
    path = root / "train" / "Benign_train.pcap.csv"
    lines = path.read_text().splitlines()
    std = lines[0].split(",").index("Std")
    cells = lines[1].split(",")
    cells[std] = "NaN"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    data = load_csv_files([path], cache=False)
    assert data.table["Std"].null_count() == 1 and data.table["Std"].is_nan().sum() == 0


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_split(root / "train", cache=cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".arrow")
    again = load_split(root / "train", cache=cache)
    _same(first, again)
    _same(first, load_split(root / "train", cache=False))
    # a changed file is a new key: the stale entry is not reused
    path = root / "train" / "Benign_train.pcap.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    changed = load_split(root / "train", cache=cache)
    assert len(changed) == len(first) - 3
    assert len(list(cache.glob("*.arrow"))) == 2


def test_dataset_cache_via_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_synthetic_dataset(tmp_path / "data")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    a = load_dataset(root)
    b = load_dataset(root)
    assert len(list((tmp_path / "c").glob("*.arrow"))) == 2  # one per split
    _same(a.train, b.train)
    _same(a.test, b.test)


def test_resolve_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert resolve_cache(None) is None and resolve_cache(False) is None
    assert resolve_cache(True) == default_cache_dir()
    monkeypatch.setenv(CACHE_ENV, "1")
    assert resolve_cache(None) == default_cache_dir()
    monkeypatch.setenv(CACHE_ENV, "0")
    assert resolve_cache(None) is None
    assert resolve_cache(tmp_path) == tmp_path


def test_cache_key_tracks_size_and_mtime(tmp_path: Path) -> None:
    p = tmp_path / "Benign_train.pcap.csv"
    p.write_text("a\n1\n")
    k1 = cache_key([p])
    os.utime(p, ns=(1, 1))
    assert cache_key([p]) != k1
