"""An on-disk cache of loaded CSV files: Arrow IPC, memory-mapped on reuse.

Reading the full CICIoMT2024 CSVs (8.7 M rows) takes seconds to tens of seconds;
reading their cached table takes well under a second because the Arrow IPC file
is memory-mapped, not parsed. The cache is keyed by the files' resolved paths,
sizes and modification times (and a format number), so a changed, added or
removed file makes a new entry; stale entries are not reused.

Enable it with ``load_dataset(..., cache=True)`` (or a folder), or for every load
with the environment variable ``IOMT_IDS_CACHE=1`` (or ``IOMT_IDS_CACHE=/some/dir``).
The default folder is ``$XDG_CACHE_HOME/iomt-ids`` (``~/.cache/iomt-ids``). Entries
hold the float64 table as read (about 8 bytes per cell, 2.7 GB for the full
release); delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["CACHE_ENV", "cache_key", "default_cache_dir", "read_cached", "resolve_cache", "write_cached"]

log = logging.getLogger(__name__)

CACHE_ENV = "IOMT_IDS_CACHE"
_FORMAT = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/iomt-ids``, else ``~/.cache/iomt-ids``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iomt-ids"


def resolve_cache(cache: bool | str | Path | None) -> Path | None:
    """The cache folder a ``cache=`` argument asks for (None: off).

    ``None`` follows :data:`CACHE_ENV` ("", "0", "false": off; "1", "true": the
    default folder; anything else: that folder); ``True`` is the default folder;
    ``False`` is off; a path is that folder.
    """
    if cache is None:
        env = os.environ.get(CACHE_ENV, "").strip()
        if env.lower() in ("", "0", "false", "no", "off"):
            return None
        return default_cache_dir() if env.lower() in ("1", "true", "yes", "on") else Path(env)
    if cache is False:
        return None
    if cache is True:
        return default_cache_dir()
    return Path(cache)


def cache_key(paths: Sequence[Path]) -> str:
    """A digest of the files' resolved paths, sizes and modification times, in order."""
    h = hashlib.sha256(f"iomt-ids-cache/{_FORMAT}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def read_cached(folder: Path, paths: Sequence[Path]) -> tuple[pl.DataFrame, np.ndarray, str] | None:
    """The cached (table, rows per file, release) of ``paths``, or None when there is no valid entry."""
    key = cache_key(paths)
    meta_path, table_path = folder / f"{key}.json", folder / f"{key}.arrow"
    if not (meta_path.is_file() and table_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        import pyarrow as pa

        # memory-mapped and zero-copy: pages are read when used, not at load time
        arrow = pa.ipc.open_file(pa.memory_map(str(table_path), "r")).read_all()
        table = pl.from_arrow(arrow, rechunk=False)
    except (OSError, ValueError, pl.exceptions.PolarsError, ImportError) as exc:
        log.warning("ignoring unreadable cache entry %s: %s", table_path, exc)
        return None
    counts = np.asarray(meta.get("rows_per_file", []), dtype=np.int64)
    if meta.get("format") != _FORMAT or len(counts) != len(paths) or int(counts.sum()) != table.height:
        log.warning("ignoring inconsistent cache entry %s", table_path)
        return None
    log.info("read %d rows of %d files from cache %s", table.height, len(paths), table_path)
    return table, counts, str(meta["release"])


def write_cached(
    folder: Path,
    paths: Sequence[Path],
    table: pl.DataFrame,
    rows_per_file: Sequence[int] | np.ndarray,
    release: str,
) -> Path:
    """Store a loaded table; returns the Arrow file. Written to a temporary name, then renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths)
    table_path = folder / f"{key}.arrow"
    tmp = table_path.with_suffix(f".arrow.tmp{os.getpid()}")
    table.write_ipc(tmp, compression="uncompressed")
    tmp.replace(table_path)
    meta = {
        "format": _FORMAT,
        "release": release,
        "files": [str(p.resolve()) for p in paths],
        "rows_per_file": [int(n) for n in rows_per_file],
    }
    (folder / f"{key}.json").write_text(json.dumps(meta))
    log.info("cached %d rows -> %s", table.height, table_path)
    return table_path
