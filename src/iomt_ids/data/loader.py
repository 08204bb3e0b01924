"""Read CICIoMT2024 CSV files as users have them: a folder with ``train/`` and ``test/`` below it.

No preprocessing happens here: rows come back as they are in the files (float64,
``inf`` and missing values kept), with the 19-class label and the capture of each
row taken from its file name. Reading uses polars (multi-threaded, no row loops).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from iomt_ids.data.cache import read_cached, resolve_cache, write_cached
from iomt_ids.data.labels import parse_file_name
from iomt_ids.exceptions import BadValueError, DatasetNotFoundError, SchemaError
from iomt_ids.features.schema import columns_for, detect_release

__all__ = [
    "CSV_PATTERN",
    "DatasetSplits",
    "LoadedData",
    "find_csv_files",
    "find_split_dirs",
    "load_csv_files",
    "load_dataset",
    "load_split",
    "read_header",
    "read_rows",
]

log = logging.getLogger(__name__)

CSV_PATTERN = "*.pcap.csv"


@dataclass
class LoadedData:
    """Rows of one split, as read.

    Attributes
    ----------
    table: polars DataFrame of the release's columns (Float64), in file order.
    labels: 19-class label of each row (from its file name).
    captures: capture id of each row (file stem plus capture index).
    release: "v1" or "v2".
    files: the files read, in order.
    rows_per_file: rows read from each file name.
    """

    table: pl.DataFrame
    labels: np.ndarray
    captures: np.ndarray
    release: str
    files: list[Path] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.height

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.table.columns)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (float64)."""
        return self.table.to_pandas()

    def to_numpy(self, dtype: type = np.float64) -> np.ndarray:
        return self.table.to_numpy().astype(dtype, copy=False)

    def subset(self, mask: np.ndarray) -> LoadedData:
        """Rows where ``mask`` (bool array or integer indices) selects."""
        mask = np.asarray(mask)
        # a boolean filter is far cheaper in polars than a gather by indices
        table = self.table.filter(pl.Series(mask)) if mask.dtype == bool else self.table[mask]
        return LoadedData(
            table=table,
            labels=self.labels[mask],
            captures=self.captures[mask],
            release=self.release,
            files=self.files,
            rows_per_file=self.rows_per_file,
        )


@dataclass
class DatasetSplits:
    """The train and test splits found below a dataset folder."""

    train: LoadedData
    test: LoadedData
    train_dir: Path
    test_dir: Path


def find_csv_files(folder: str | Path) -> list[Path]:
    """All ``*.pcap.csv`` files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise DatasetNotFoundError(f"{folder}: folder does not exist.")
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: expected a folder of {CSV_PATTERN} files, got a file.")
    files = sorted(folder.glob(CSV_PATTERN))
    if not files:
        raise DatasetNotFoundError(f"{folder}: no {CSV_PATTERN} files in this folder.")
    return files


def find_split_dirs(root: str | Path) -> tuple[Path, Path]:
    """Find the ``train/`` and ``test/`` folders holding CSVs at or below ``root``.

    A download keeps them e.g. at ``WiFi_and_MQTT/attacks/CSV/train``. When several
    pairs exist (e.g. two releases unpacked side by side), this is an error that
    lists them, so that the user points ``--data`` at one.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetNotFoundError(f"{root}: data folder does not exist.")
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: expected a folder, got a file.")
    pairs = []
    for train in sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and p.name.lower() == "train"):
        test = next((s for s in train.parent.iterdir() if s.is_dir() and s.name.lower() == "test"), None)
        if test is not None and any(train.glob(CSV_PATTERN)) and any(test.glob(CSV_PATTERN)):
            pairs.append((train, test))
    if not pairs:
        raise DatasetNotFoundError(
            f"{root}: found no 'train/' and 'test/' folders holding {CSV_PATTERN} files at or below it."
        )
    if len(pairs) > 1:
        listed = ", ".join(str(t.parent) for t, _ in pairs)
        raise DatasetNotFoundError(f"{root}: several train/test pairs found ({listed}); point --data at one.")
    return pairs[0]


def read_header(path: str | Path) -> list[str]:
    """The column names in the first line of a CSV file."""
    path = Path(path)
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if not first.strip():
        raise SchemaError(f"{path}: file is empty (no header line).")
    return [c.strip() for c in first.rstrip("\r\n").split(",")]


def _locate_bad_cell(path: Path, header: list[str]) -> str:
    """Describe the first cell of ``path`` that does not parse as a number."""
    raw = pl.read_csv(path, infer_schema=False)
    raw = raw.rename({c: c.strip() for c in raw.columns})
    for col in header:
        values = raw[col].str.strip_chars()
        cast = values.cast(pl.Float64, strict=False)
        bad = cast.is_null() & values.is_not_null() & (values != "")
        if bad.any():
            row = int(bad.arg_max())  # type: ignore[arg-type]
            return f"column {col!r}, data row {row + 1} (line {row + 2}): {values[row]!r} is not a number"
    return "a row that does not parse (wrong number of fields?)"


def read_rows(path: str | Path) -> tuple[pl.DataFrame, str]:
    """Read one CSV of a release's columns (any file name); returns (rows as Float64, release)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: file does not exist.")
    header = read_header(path)
    release = detect_release(header, source=str(path))
    cols = columns_for(release)
    try:
        df = pl.read_csv(
            path,
            has_header=True,
            new_columns=[c.strip() for c in header],
            schema_overrides={c: pl.Float64 for c in cols},
            null_values=[""],
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        where = _locate_bad_cell(path, list(cols))
        raise BadValueError(f"{path}: {where}; expected a number (or 'inf', or empty for Std).") from exc
    except pl.exceptions.PolarsError as exc:
        raise BadValueError(f"{path}: cannot be read as CSV: {str(exc).splitlines()[0]}") from exc
    # One in-memory representation of "missing": NaN literals become null as empty cells do.
    df = df.select([pl.col(c).fill_nan(None) for c in cols])
    return df, release


def _scan_all(paths: list[Path]) -> tuple[pl.DataFrame, np.ndarray, str] | None:
    """Read every file in one multi-threaded polars query; None when any file needs the careful path.

    Returns (table, rows per file, release). Files that are missing or do not parse
    make this return None, and :func:`load_csv_files` then reads file by file, which
    names the bad file, column and line.
    """
    if not all(p.is_file() for p in paths):
        return None
    release_of: dict[str, Path] = {}
    frames = []
    for path in paths:
        header = read_header(path)
        release = detect_release(header, source=str(path))
        release_of.setdefault(release, path)
        if len(release_of) > 1:
            (r1, p1), (r2, p2) = list(release_of.items())[:2]
            raise SchemaError(
                f"releases are mixed: {p1} is {r1} and {p2} is {r2}; use files of one release per run."
            )
        cols = columns_for(release)
        names = [c.strip() for c in header]
        lf = pl.scan_csv(
            path,
            has_header=True,
            new_columns=names,
            schema_overrides={c: pl.Float64 for c in cols},
            null_values=[""],
        )
        frames.append(lf if names == list(cols) else lf.select(cols))
    try:
        # one frame per file (for the row counts), parsed in parallel; concat without copying
        parts = pl.collect_all(frames)
    except pl.exceptions.PolarsError as exc:
        log.debug(
            "fast read failed (%s); reading file by file", str(exc).splitlines()[0] if str(exc) else exc
        )
        return None
    counts = np.array([p.height for p in parts], dtype=np.int64)
    table = pl.concat(parts, how="vertical", rechunk=False)
    del parts
    # One in-memory representation of "missing": NaN literals become null as empty cells do
    # (checked per column first; real files have none, so usually nothing is copied).
    has_nan = table.select(pl.all().is_nan().any()).row(0)  # one parallel pass over every column
    nan_cols = [c for c, flag in zip(table.columns, has_nan, strict=True) if flag]
    if nan_cols:
        table = table.with_columns([pl.col(c).fill_nan(None) for c in nan_cols])
    return table, counts, next(iter(release_of))


def load_csv_files(
    paths: Iterable[str | Path], *, progress: bool = False, cache: bool | str | Path | None = None
) -> LoadedData:
    """Read dataset CSV files; labels come from their names.

    All files are parsed in one multi-threaded polars query; when that fails, the
    files are read one by one so that the error names the file, column and line.
    ``cache`` keeps the table as a memory-mapped Arrow file keyed by the files'
    paths, sizes and modification times (see :mod:`iomt_ids.data.cache`; None:
    the ``IOMT_IDS_CACHE`` environment variable decides, off by default).

    Raises
    ------
    UnknownFileNameError: a name maps to no class (nothing is read then).
    SchemaError: a file's columns are not a release, or files of both releases are mixed.
    BadValueError: a cell is not a number (the error names file, column and line).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetNotFoundError(f"no {CSV_PATTERN} files given.")
    parsed = [parse_file_name(p) for p in paths]  # fail on a bad name before reading anything
    folder = resolve_cache(cache)
    hit = read_cached(folder, paths) if folder is not None and all(p.is_file() for p in paths) else None
    fast = hit if hit is not None else _scan_all(paths)
    if fast is not None:
        table, counts, release = fast
        data = LoadedData(
            table=table,
            labels=np.repeat(np.array([i.label for i in parsed], dtype=object), counts),
            captures=np.repeat(np.array([i.capture for i in parsed], dtype=object), counts),
            release=release,
            files=paths,
            rows_per_file={p.name: int(n) for p, n in zip(paths, counts, strict=True)},
        )
        if folder is not None and hit is None:
            write_cached(folder, paths, table, counts, release)
        return data
    tables: list[pl.DataFrame] = []
    labels: list[np.ndarray] = []
    captures: list[np.ndarray] = []
    release_of: dict[str, Path] = {}
    rows: dict[str, int] = {}
    iterator: Sequence[tuple[Path, object]] = list(zip(paths, parsed, strict=True))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="reading CSV", unit="file")  # type: ignore[assignment]
    for path, info in iterator:
        df, release = read_rows(path)
        release_of.setdefault(release, path)
        if len(release_of) > 1:
            (r1, p1), (r2, p2) = list(release_of.items())[:2]
            raise SchemaError(
                f"releases are mixed: {p1} is {r1} and {p2} is {r2}; use files of one release per run."
            )
        tables.append(df)
        labels.append(np.full(df.height, info.label, dtype=object))  # type: ignore[attr-defined]
        captures.append(np.full(df.height, info.capture, dtype=object))  # type: ignore[attr-defined]
        rows[path.name] = df.height
        log.debug("read %s: %d rows (%s)", path, df.height, release)
    table = pl.concat(tables, how="vertical", rechunk=True)
    return LoadedData(
        table=table,
        labels=np.concatenate(labels),
        captures=np.concatenate(captures),
        release=next(iter(release_of)),
        files=paths,
        rows_per_file=rows,
    )


def load_split(
    folder: str | Path, *, progress: bool = False, cache: bool | str | Path | None = None
) -> LoadedData:
    """Read every ``*.pcap.csv`` file directly in ``folder`` (``cache``: see :func:`load_csv_files`)."""
    return load_csv_files(find_csv_files(folder), progress=progress, cache=cache)


def load_dataset(
    root: str | Path, *, progress: bool = False, cache: bool | str | Path | None = None
) -> DatasetSplits:
    """Find ``train/`` and ``test/`` below ``root`` and read both (one release for both).

    ``cache``: see :func:`load_csv_files`.
    """
    train_dir, test_dir = find_split_dirs(root)
    train = load_split(train_dir, progress=progress, cache=cache)
    test = load_split(test_dir, progress=progress, cache=cache)
    if train.release != test.release:
        raise SchemaError(
            f"releases are mixed: {train_dir} holds {train.release} files and {test_dir} holds "
            f"{test.release} files; use one release per run."
        )
    return DatasetSplits(train=train, test=test, train_dir=train_dir, test_dir=test_dir)
