"""Whole capture files -> feature rows (a DataFrame or a dataset-style CSV)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.packets import CaptureReader, CaptureStats, read_capture
from iomt_ids.features.schema import columns_for
from iomt_ids.features.windows import WindowBatch, WindowExtractor

__all__ = ["INTEGER_COLUMNS", "extract_file", "extract_to_csv", "iter_windows", "write_features_csv"]

logger = logging.getLogger(__name__)

#: v2 columns the dataset CSVs write as integers (``6``, ``660``, ``10``), not ``6.0``.
INTEGER_COLUMNS: frozenset[str] = frozenset(
    {"Protocol Type", "ack_count", "syn_count", "fin_count", "rst_count", "Tot sum", "Min", "Max", "Number"}
)

ProgressFn = Callable[[int, int, CaptureStats, int], None]


@contextmanager
def _progress_bar(path: Path, total: int, enabled: bool) -> Iterator[ProgressFn]:
    if not enabled:
        yield lambda *_: None
        return
    from tqdm.auto import tqdm

    with tqdm(
        total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=path.name, leave=False
    ) as bar:
        t0 = time.perf_counter()

        def update(done: int, _total: int, stats: CaptureStats, windows: int) -> None:
            bar.update(done - bar.n)
            rate = stats.packets_read / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(
                pkts=f"{stats.packets_read:,}", windows=f"{windows:,}", pkt_s=f"{rate:,.0f}", refresh=False
            )

        yield update


def iter_windows(
    path: str | os.PathLike[str],
    window: int = 10,
    release: str = "v2",
    *,
    chunk_bytes: int | None = None,
    meta: bool = False,
    batch_size: int = 65536,
    stats: CaptureStats | None = None,
    progress: bool | ProgressFn = False,
) -> Iterator[WindowBatch]:
    """Yield the :class:`WindowBatch` es of a capture file as they are completed.

    ``stats`` (if given) is filled with the combined file and extractor counts when
    the iterator is exhausted. Memory is bounded by the batch size.
    """
    reader: CaptureReader = read_capture(path, batch_size=batch_size)
    extractor = WindowExtractor(window, release, chunk_bytes=chunk_bytes, meta=meta)
    ctx = _progress_bar(reader.path, reader.file_size, progress is True)
    with reader, ctx as bar:
        update = progress if callable(progress) else bar
        for batch in reader:
            out = extractor.feed(batch.ts, batch.frames, batch.linktype)
            update(reader.stats.bytes_read, reader.file_size, reader.stats, extractor.windows_emitted)
            if len(out):
                yield out
        tail = extractor.flush()
        update(reader.stats.bytes_read, reader.file_size, reader.stats, extractor.windows_emitted)
        if len(tail):
            yield tail
    if stats is not None:
        combined = _combine(reader.stats, extractor.stats)
        stats.packets_read = combined.packets_read
        stats.packets_accepted = combined.packets_accepted
        stats.bytes_read = combined.bytes_read
        stats.skipped = combined.skipped
        stats.errors = combined.errors
    logger.info(
        "%s: %s, windows %d",
        reader.path,
        _combine(reader.stats, extractor.stats).summary(),
        extractor.windows_emitted,
    )


def _combine(file_stats: CaptureStats, ex_stats: CaptureStats) -> CaptureStats:
    out = CaptureStats(
        packets_read=file_stats.packets_read,
        packets_accepted=ex_stats.packets_accepted,
        bytes_read=file_stats.bytes_read,
        errors=list(file_stats.errors),
    )
    for src in (file_stats, ex_stats):
        for reason, n in src.skipped.items():
            out.skip(reason, n)
    return out


def extract_file(
    path: str | os.PathLike[str],
    window: int = 10,
    release: str = "v2",
    progress: bool = True,
    *,
    chunk_bytes: int | None = None,
    batch_size: int = 65536,
) -> tuple[pd.DataFrame, CaptureStats]:
    """Extract the window features of a whole capture file.

    Parameters
    ----------
    path : str or os.PathLike
        pcap or pcapng file (Ethernet, SLL or SLL2).
    window : int, default 10
        Packets per window (10 or 100 in the dataset).
    release : {"v2", "v1"}, default "v2"
    progress : bool, default True
        Show a progress bar (tqdm, on stderr) with bytes, rate and ETA.
    chunk_bytes : int or None
        Replicate CIC's 10 MB chunk resets (see :class:`WindowExtractor`).
    batch_size : int, default 65536
        Packets decoded per step.

    Returns
    -------
    features : pandas.DataFrame
        One row per window, the release's columns in order, float64.
    stats : CaptureStats
        Packets read, accepted, skipped by reason, bytes read, early-stop errors.

    Raises
    ------
    CaptureError
        Unreadable file, unknown format or unsupported link type.
    """
    stats = CaptureStats()
    parts = [
        b.features
        for b in iter_windows(
            path,
            window,
            release,
            chunk_bytes=chunk_bytes,
            batch_size=batch_size,
            stats=stats,
            progress=progress,
        )
    ]
    if not parts:
        frame = WindowBatch.empty(release).features
    else:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    return frame, stats


def write_features_csv(frame: pd.DataFrame, out: IO[bytes], header: bool = True) -> None:
    """Write feature rows the way the dataset CSVs look, with round-trip floats.

    Integer-valued v2 columns (:data:`INTEGER_COLUMNS`) are written as integers,
    other values as the shortest string that reads back to the same float64,
    ``inf`` as ``inf`` and NaN as an empty field (as pandas does).
    """
    import polars as pl

    cols: dict[str, Any] = {}
    v2 = "Time_To_Live" in frame.columns  # v1 means are fractional even in these columns
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=np.float64)
        if (
            v2
            and name in INTEGER_COLUMNS
            and np.isfinite(values).all()
            and (values == np.round(values)).all()
        ):
            cols[name] = pl.Series(name, values.astype(np.int64))
        else:
            cols[name] = pl.Series(name, values).fill_nan(None)
    pl.DataFrame(cols).write_csv(out, include_header=header)


def extract_to_csv(
    path: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    window: int = 10,
    release: str = "v2",
    *,
    progress: bool | ProgressFn = False,
    chunk_bytes: int | None = None,
    batch_size: int = 65536,
) -> tuple[int, CaptureStats]:
    """Extract a capture straight to a CSV with the dataset's header and column order.

    Rows are written as windows complete, so memory stays bounded. A capture with
    no IPv4/ARP packets gives a CSV with only the header.

    Returns
    -------
    rows : int
        Windows written.
    stats : CaptureStats
    """
    out_path = Path(out_csv)
    stats = CaptureStats()
    batches = iter_windows(
        path, window, release, chunk_bytes=chunk_bytes, batch_size=batch_size, stats=stats, progress=progress
    )
    first = next(batches, None)  # opens the capture: a bad input raises before the CSV is created
    rows = 0
    try:
        fh = open(out_path, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CaptureError(f"{out_path}: cannot write the feature CSV: {exc.strerror or exc}") from exc
    with fh:
        fh.write((",".join(columns_for(release)) + "\n").encode())
        if first is not None:
            write_features_csv(first.features, fh, header=False)
            rows += len(first)
        for batch in batches:
            write_features_csv(batch.features, fh, header=False)
            rows += len(batch)
    return rows, stats
