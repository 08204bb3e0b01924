"""Scan a capture archive: score every capture with a model, in parallel, one EVE alerts file per capture.

:func:`run_scan` finds the captures (:func:`find_captures`: a folder searched
recursively for ``.pcap``, ``.pcapng`` and ``.cap`` files, plain or gzip'ed, or a
glob), runs the detector over each one in worker processes (an
:class:`~iomt_ids.workflows.executors.Executor`: a local process pool or Ray) and
writes

* ``OUT/alerts/<relative path>.eve.json``: the capture's alerts and stats lines,
  byte for byte what ``iomt-ids detect --pcap FILE --alerts F`` writes for it;
* ``OUT/summary.csv`` and ``OUT/summary.json``: per capture and in total, packets,
  windows, alerts per category, alert lines written, status and error.

A capture that cannot be read is reported (``status = error`` and the message,
which names the file) and the others go on; ``partial`` means a corrupt record or
gzip stream stopped the reading part-way (what was read is scored and written).

Large captures in chunks
------------------------
A capture of more than ``chunk_packets`` packets is split into chunks of that
many packets, scored in parallel, and stitched so that the result equals a
single-process run over the whole file bit for bit. Why that holds:

* **Reading** (this process, the *coordinator*): the file is read once with
  :class:`~iomt_ids.detection.sources.PcapSource`, so the packet batches are the
  ones ``detect`` sees (65,536 packets, cut where pcapng changes interface). A
  pcap has no index (packet N's offset is known only after walking the N records
  before it; pcapng needs its interface blocks, gzip its whole stream before), so
  a worker cannot start reading at packet N by itself: the coordinator ships each
  chunk's frames (a compact copy) to the workers. It also counts the *accepted*
  frames (IPv4 and ARP: the windows are groups of W accepted packets, not of W
  frames) with the same dissector, and keeps the last ``max(W)`` accepted frames.
* **Chunk workers** do the expensive part: dissection, window features and model
  scores. A worker's window streams start where the whole-file streams would be
  at its first packet: it replays the accepted frames before the chunk that the
  open window of each stream holds (``accepted_before mod W`` of them), after the
  one before them (the IAT reference, then flushed), and numbers its windows from
  ``accepted_before // W``. Features are per window, so they are the same.
  Scores are not per window: a model scores a batch of windows and a float
  result can depend on the batch (BLAS blocking; a torch MLP gives other last bits
  for a row scored alone). So windows are scored in exactly the groups ``detect``
  scores (the windows that one packet batch completes in one stream): a worker
  scores the groups of the batches wholly inside its chunk and returns, of each,
  only the windows that can alert (with a site bundle: those unlike the site's
  traffic) and their scores; the groups of a batch cut by a chunk boundary are
  returned unscored and scored here once their parts are joined.
* **The stitch** (this process, in file order) replays what the detection loop
  does with the verdicts: the site detector's persistence rule (state across
  windows), alert folding (state across time: intervals, idle episodes, the
  expiry after every packet batch), the model-fit warnings and stats lines, the
  final partial windows, explanations of the alert lines written, and the EVE
  lines. It calls the same code (``Detector.alert_rows`` on the kept windows with
  the workers' scores, :class:`~iomt_ids.detection.folding.AlertFolder`,
  :class:`~iomt_ids.detection.runner.FitMonitor`), in the same order.

Chunking is used with a plain or site detector on v2 features; a v1 bundle (whose
features carry per-flow state from the start of the capture) is scanned whole.
The coordinator reads and dissects chunked captures on one core (about 0.65 s per
million packets here, against 2 to 9 s of worker CPU), so chunks pay off for a few
large captures; an archive of many captures is spread over the workers file by file.

Workers load the model once per process (cached by path and version) and use one
compute thread each; ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import glob
import io
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from iomt_ids.detection.alerts import JsonLinesSink, StatsEvent, StreamSink
from iomt_ids.detection.detector import AlertRows, Detector
from iomt_ids.detection.folding import AlertFolder
from iomt_ids.detection.runner import DEFAULT_WINDOWS, DetectConfig, DetectSummary, FitMonitor
from iomt_ids.exceptions import CaptureError, ConfigError, IomtIdsError
from iomt_ids.features import CaptureStats, Frames
from iomt_ids.features.dissect import dissect
from iomt_ids.features.packets import PAD
from iomt_ids.workflows.executors import Executor, TaskResult, make_executor

__all__ = [
    "CAPTURE_SUFFIXES",
    "DEFAULT_CHUNK_PACKETS",
    "Capture",
    "FileResult",
    "ScanConfig",
    "ScanProgress",
    "ScanResult",
    "find_captures",
    "run_scan",
]

logger = logging.getLogger(__name__)

#: File names a folder is searched for (case-insensitive), each also gzip-compressed (``.gz``).
CAPTURE_SUFFIXES: tuple[str, ...] = (".pcap", ".pcapng", ".cap")
#: Packets per chunk of a large capture (about 100 MB of frames shipped per chunk).
DEFAULT_CHUNK_PACKETS = 1_000_000
#: Smallest record a capture can hold (a pcap record header): a file below
#: ``chunk_packets * _MIN_RECORD`` bytes cannot have more than ``chunk_packets`` packets.
_MIN_RECORD = 16
#: Reader skip reasons that mean a part of the capture could not be read.
_CORRUPT_REASONS = ("corrupt_record", "corrupt_gzip")
_GLOB_MAGIC = set("*?[")


# -- finding the captures -------------------------------------------------------------------------
@dataclass(frozen=True)
class Capture:
    """One capture file of the archive: its path and its path relative to the scanned root."""

    path: Path
    rel: str
    size: int


def _is_capture_name(name: str) -> bool:
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(CAPTURE_SUFFIXES)


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (what relative paths are taken from)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if _GLOB_MAGIC & set(part):
            break
        fixed.append(part)
    if len(fixed) == len(parts):  # no wildcard at all
        fixed = fixed[:-1]
    return Path(*fixed) if fixed else Path(".")


def find_captures(patterns: Sequence[str | os.PathLike[str]]) -> list[Capture]:
    """The capture files named by folders, files or globs, with their relative paths.

    Parameters
    ----------
    patterns : sequence of str or path
        Each a folder (searched recursively for ``*.pcap``, ``*.pcapng``, ``*.cap``,
        plain or ``.gz``, case-insensitive), a file, or a glob (``**`` recurses; every
        file it matches is taken). A shell that expands a glob passes many files: fine.

    Returns
    -------
    list of Capture
        Sorted by relative path. A folder's files are relative to it, a glob's to
        its folder part before the first wildcard, a file's to its folder.

    Raises
    ------
    ConfigError
        Nothing matched (the message says what was searched), a path that is not
        there, or two inputs giving the same relative path (their alerts files would
        collide).
    """
    if not patterns:
        raise ConfigError("scan: give at least one folder, capture file or glob.")
    found: dict[str, Capture] = {}
    searched: list[str] = []
    seen: set[Path] = set()
    for raw in patterns:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            root, files = p, [f for f in p.rglob("*") if f.is_file() and _is_capture_name(f.name)]
            searched.append(f"folder {text} (recursively, for *.pcap, *.pcapng, *.cap, plain or .gz)")
        elif p.is_file():
            root, files = p.parent, [p]
        elif _GLOB_MAGIC & set(text):
            root = _glob_root(text)
            files = [Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()]
            searched.append(f"glob {text!r}")
        else:
            raise ConfigError(f"scan: {text}: no such file or folder (and no wildcard in it to match files).")
        for f in sorted(files):
            resolved = f.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                rel = f.relative_to(root).as_posix()
            except ValueError:
                rel = f.name
            if rel in found:
                raise ConfigError(
                    f"scan: {found[rel].path} and {f} have the same relative path {rel!r}; their alerts files "
                    "would collide. Scan them separately (different --out)."
                )
            found[rel] = Capture(f, rel, f.stat().st_size)
    if not found:
        raise ConfigError("scan: no captures matched: searched " + "; ".join(searched) + ".")
    return [found[k] for k in sorted(found)]


# -- configuration and results -----------------------------------------------------------------------
@dataclass(frozen=True)
class ScanConfig:
    """Settings of one scan.

    Parameters
    ----------
    model : Path
        RUN_DIR of a trained bundle, or SITE_DIR from ``iomt-ids adapt``. Every worker
        must see it at this path (a shared filesystem on a cluster).
    out : Path
        Output folder (created): ``alerts/``, ``summary.csv``, ``summary.json``.
    windows, threshold, fold_seconds, fold_idle, eve, explain
        As ``iomt-ids detect`` (``eve``: ``"extended"`` or ``"strict"``).
    chunk_packets : int, default 1,000,000
        Split captures of more packets into chunks of this many, scored in parallel;
        0 scans every capture whole.
    executor : {"local", "ray"}
    workers : int, optional
        Parallel tasks; default the usable CPUs (local) or the cluster's CPUs (Ray).
    ray_address : str, optional
        Ray cluster to join (default ``RAY_ADDRESS``, else a local runtime).
    """

    model: Path
    out: Path
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    threshold: float = 0.5
    fold_seconds: float = 60.0
    fold_idle: float = 10.0
    eve: str = "extended"
    explain: bool = True
    chunk_packets: int = DEFAULT_CHUNK_PACKETS
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.eve not in ("extended", "strict"):
            raise ConfigError(f"eve must be 'extended' or 'strict'; got {self.eve!r} instead.")
        c = self.chunk_packets
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"chunk_packets must be an integer >= 0 (0: no chunks); got {c!r} instead.")
        object.__setattr__(self, "windows", tuple(self.windows))
        self.detect_config()  # checks windows and folding

    def detect_config(self) -> DetectConfig:
        return DetectConfig(windows=self.windows, fold_seconds=self.fold_seconds, fold_idle=self.fold_idle)


@dataclass
class FileResult:
    """What the scan did with one capture.

    Attributes
    ----------
    rel, path : str
        Relative path (the alerts file mirrors it) and the path read.
    status : str
        ``ok``, ``partial`` (reading stopped at a corrupt record or gzip stream, or the
        capture failed mid-run; what was read is scored) or ``error`` (nothing written).
    error : str
        Why, naming the file; empty when ok.
    summary : DetectSummary or None
        The detection summary, as ``detect`` computes it.
    chunks : int
        Chunks the capture was split into (0: scanned whole by one worker).
    alerts_file : str or None
        The EVE file, relative to OUT.
    wall_s : float
        From the capture's first task to its last result.
    notes : list of str
        Capture problems that did not stop the reading (a last record cut short).
    """

    rel: str
    path: str
    status: str = "ok"
    error: str = ""
    summary: DetectSummary | None = None
    chunks: int = 0
    alerts_file: str | None = None
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file": self.rel,
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "chunks": self.chunks,
            "alerts_file": self.alerts_file,
            "wall_s": round(self.wall_s, 3),
            "notes": list(self.notes),
        }
        if self.summary is not None:
            s = self.summary.to_dict()
            s["skipped"] = dict(sorted(s["skipped"].items()))
            for key in ("source", "wall_s", "packets_per_s", "windows_per_s"):
                s.pop(key, None)
            d["detect"] = s
        return d


@dataclass
class ScanResult:
    """All captures of a scan (sorted by relative path) and the totals."""

    files: list[FileResult]
    config: ScanConfig
    model_version: str = ""
    executor: str = ""
    wall_s: float = 0.0
    chunked_note: str = ""

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.failed]

    @property
    def categories(self) -> list[str]:
        """Alert categories seen in any capture, most alerts first."""
        c: Counter[str] = Counter()
        for f in self.files:
            if f.summary is not None:
                c.update(f.summary.categories)
        return [k for k, _ in c.most_common()]

    def totals(self) -> dict[str, Any]:
        """Sums over the captures that produced a summary."""
        t: dict[str, Any] = {"files": len(self.files), "failed": len(self.failed), "packets": 0, "accepted": 0,
                             "windows": 0, "alerts_raw": 0, "alerts_emitted": 0, "partial_dropped": 0}  # fmt: skip
        by_size: Counter[str] = Counter()
        cats: Counter[str] = Counter()
        for f in self.files:
            s = f.summary
            if s is None:
                continue
            for key in ("packets", "accepted", "windows", "alerts_raw", "alerts_emitted", "partial_dropped"):
                t[key] += getattr(s, key)
            by_size.update({str(k): v for k, v in s.windows_by_size.items()})
            cats.update(s.categories)
        t["windows_by_size"] = dict(by_size)
        t["categories"] = {k: cats[k] for k in self.categories}
        return t

    def rows(self) -> list[dict[str, Any]]:
        """The summary table: one row per capture and a last ``TOTAL`` row."""
        cats = self.categories
        windows = [str(w) for w in self.config.windows]
        out = []
        for f in self.files:
            s = f.summary
            row: dict[str, Any] = {"file": f.rel, "status": f.status}
            row["packets"] = s.packets if s else ""
            row["accepted"] = s.accepted if s else ""
            row["windows"] = s.windows if s else ""
            for w in windows:
                row[f"windows_w{w}"] = s.windows_by_size.get(int(w), 0) if s else ""
            row["alerts"] = s.alerts_raw if s else ""
            row["alert_lines"] = s.alerts_emitted if s else ""
            for c in cats:
                row[c] = s.categories.get(c, 0) if s else ""
            row.update({"chunks": f.chunks, "seconds": round(f.wall_s, 3), "alerts_file": f.alerts_file or "",
                        "error": f.error or "; ".join(f.notes)})  # fmt: skip
            out.append(row)
        t = self.totals()
        total: dict[str, Any] = {"file": "TOTAL", "status": f"{t['failed']} failed" if t["failed"] else "ok",
                                 "packets": t["packets"], "accepted": t["accepted"], "windows": t["windows"]}  # fmt: skip
        for w in windows:
            total[f"windows_w{w}"] = t["windows_by_size"].get(w, 0)
        total.update({"alerts": t["alerts_raw"], "alert_lines": t["alerts_emitted"], **t["categories"],
                      "chunks": sum(f.chunks for f in self.files), "seconds": round(self.wall_s, 3),
                      "alerts_file": "", "error": ""})  # fmt: skip
        out.append(total)
        return out

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": {"path": str(c.model), "version": self.model_version},
            "config": {
                "windows": list(c.windows),
                "threshold": c.threshold,
                "fold_seconds": c.fold_seconds,
                "fold_idle": c.fold_idle,
                "eve": c.eve,
                "explain": c.explain,
                "chunk_packets": c.chunk_packets,
            },
            "executor": self.executor,
            "wall_s": round(self.wall_s, 3),
            "chunking": self.chunked_note or "on",
            "total": self.totals(),
            "files": [f.to_dict() for f in self.files],
        }

    def write(self, out: Path) -> tuple[Path, Path]:
        """Write ``summary.csv`` and ``summary.json`` into ``out``; return their paths."""
        rows = self.rows()
        csv_path, json_path = out / "summary.csv", out / "summary.json"
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return csv_path, json_path


class ScanProgress(Protocol):
    """What :func:`run_scan` reports while it runs (the CLI draws a progress bar)."""

    def start(self, captures: Sequence[Capture], executor: str) -> None: ...

    def file_done(self, result: FileResult) -> None: ...


# -- the model in a worker ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _ModelSpec:
    """Which detector a task needs; workers load it once per process (see :func:`_detector`)."""

    path: str
    version: str
    threshold: float
    explain: bool
    eve_strict: bool


_DETECTORS: dict[_ModelSpec, Detector] = {}


def _load(spec: _ModelSpec) -> Detector:
    from iomt_ids.detection.site import load_detector

    return load_detector(
        spec.path, threshold=spec.threshold, explain=spec.explain, eve_strict=spec.eve_strict
    )


def _detector(spec: _ModelSpec) -> Detector:
    """This process's detector for ``spec``, loaded on first use (keyed by path, version and options)."""
    det = _DETECTORS.get(spec)
    if det is None:
        det = _load(spec)
        if det.model_version != spec.version:
            raise IomtIdsError(
                f"model {spec.path}: the scan started with version {spec.version}, but this worker loaded "
                f"{det.model_version}; the bundle changed during the scan (or differs on this node)."
            )
        _DETECTORS[spec] = det
    return det


def _kind(det: Detector) -> str:
    """``plain`` or ``site`` when the chunk stitch can replay this detector's verdicts exactly, else ``""``."""
    from iomt_ids.detection.site import SiteDetector

    if type(det) is Detector:
        return "plain"
    if type(det) is SiteDetector:
        return "site"
    return ""


# -- tasks ------------------------------------------------------------------------------------------------
@dataclass
class _FileTask:
    """Score one whole capture with ``run_detection`` (a worker)."""

    index: int
    path: str
    spec: _ModelSpec
    config: DetectConfig

    def run(self) -> _FileOutcome:
        from iomt_ids.detection.runner import run_detection
        from iomt_ids.detection.sources import PcapSource

        t0 = time.perf_counter()
        try:
            det = _detector(self.spec)
            source = PcapSource(self.path)
            buf = io.StringIO()
            summary = run_detection(source, det, [StreamSink(buf)], self.config)
        except Exception as exc:
            return _FileOutcome(self.index, error=_message(exc, self.path), wall_s=time.perf_counter() - t0)
        stats = source.capture_stats
        return _FileOutcome(
            self.index,
            summary=summary,
            eve=buf.getvalue(),
            capture_errors=list(stats.errors),
            capture_skipped=dict(stats.skipped),
            wall_s=time.perf_counter() - t0,
        )


@dataclass
class _FileOutcome:
    index: int
    summary: DetectSummary | None = None
    eve: str = ""
    capture_errors: list[str] = field(default_factory=list)
    capture_skipped: dict[str, int] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0


@dataclass
class _Segment:
    """The part of one packet batch that falls in a chunk (a compact copy of its frames).

    ``first``/``last``: the segment starts/ends its batch (both: the whole batch).
    """

    batch: int
    first: bool
    last: bool
    ts: np.ndarray
    buf: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    linktype: int

    @property
    def frames(self) -> Frames:
        return Frames(self.buf, self.offsets, self.lengths)

    @classmethod
    def pack(
        cls, batch_index: int, ts: np.ndarray, frames: Frames, linktype: int, first: bool, last: bool
    ) -> _Segment:
        if len(frames):
            lo = int(frames.offsets.min())
            hi = int((frames.offsets + frames.lengths).max())
        else:
            lo = hi = 0
        buf = np.empty(hi - lo + PAD, dtype=np.uint8)
        buf[: hi - lo] = frames.buffer[lo:hi]
        buf[hi - lo :] = 0
        return cls(batch_index, first, last, np.array(ts, dtype=np.float64), buf,
                   np.asarray(frames.offsets, dtype=np.int64) - lo, np.array(frames.lengths, dtype=np.int64),
                   int(linktype))  # fmt: skip


#: An accepted frame kept for the next chunk's warm-up: (timestamp, frame bytes, link type).
_Frame = tuple[float, bytes, int]


@dataclass
class _Group:
    """One stream's windows completed by (part of) one packet batch, as a chunk worker returns them.

    ``scored``: the whole batch was in the chunk; only the windows that can alert are
    kept (``features``/``meta`` rows, ``proba``, and ``novelty`` for a site detector).
    Otherwise all windows, unscored (the stitch joins the parts and scores them).
    """

    n: int = 0
    last_end_ts: float = 0.0
    scored: bool = False
    features: pd.DataFrame | None = None
    meta: pd.DataFrame | None = None
    proba: np.ndarray | None = None
    novelty: np.ndarray | None = None


@dataclass
class _ChunkTask:
    """Dissect, extract and score one chunk of a capture (a worker)."""

    file_index: int
    chunk: int
    path: str
    first_packet: int
    accepted_before: int
    lookback: list[_Frame]
    segments: list[_Segment]
    spec: _ModelSpec
    config: DetectConfig

    def run(self) -> _ChunkOutcome:
        from iomt_ids.features.windows import WindowExtractor

        t0 = time.perf_counter()
        n = sum(len(s.ts) for s in self.segments)
        try:
            det = _detector(self.spec)
            kind = _kind(det)
            exs = {w: WindowExtractor(window=w, release=det.bundle.release) for w in self.config.windows}
            for w, ex in exs.items():
                _warm_up(ex, w, self.accepted_before, self.lookback)
            segments: list[tuple[int, bool, bool, dict[int, _Group]]] = []
            for seg in self.segments:
                frames = seg.frames
                groups: dict[int, _Group] = {}
                for w, ex in exs.items():
                    wb = ex.feed(seg.ts, frames, seg.linktype)
                    groups[w] = _score(det, kind, wb, w) if seg.first and seg.last else _raw(wb)
                segments.append((seg.batch, seg.first, seg.last, groups))
            # the final partial windows: used only if this chunk turns out to be the last one
            tails: dict[int, _Group | None] = {}
            for w, ex in exs.items():
                tail = ex.flush()
                if len(tail) and int(tail.meta["n_packets"].iloc[0]) >= self.config.min_partial * w:
                    tails[w] = _score(det, kind, tail, w)
                elif len(tail):
                    tails[w] = None
        except Exception as exc:
            where = f"{self.path} (chunk {self.chunk + 1}, packets {self.first_packet:,}-{self.first_packet + n - 1:,})"
            return _ChunkOutcome(self.file_index, self.chunk, error=_message(exc, where))
        return _ChunkOutcome(self.file_index, self.chunk, segments, tails, wall_s=time.perf_counter() - t0)


@dataclass
class _ChunkOutcome:
    file_index: int
    chunk: int
    segments: list[tuple[int, bool, bool, dict[int, _Group]]] = field(default_factory=list)
    tails: dict[int, _Group | None] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0


def _run_task(task: _FileTask | _ChunkTask) -> _FileOutcome | _ChunkOutcome:
    """The function the executor runs for every task."""
    logging.getLogger("iomt_ids").setLevel(logging.ERROR)  # fit warnings come back in the summaries
    return task.run()


def _message(exc: BaseException, where: str) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, IomtIdsError) and where in text:
        return text
    return f"{where}: {text}" if isinstance(exc, IomtIdsError) else f"{where}: {type(exc).__name__}: {text}"


def _feed_frames(ex: Any, frames: Sequence[_Frame]) -> int:
    """Feed (ts, bytes, link type) frames to an extractor in runs of one link type; return windows made."""
    made = 0
    start = 0
    while start < len(frames):
        lt = frames[start][2]
        stop = start
        while stop < len(frames) and frames[stop][2] == lt:
            stop += 1
        run = frames[start:stop]
        made += len(ex.feed(np.array([f[0] for f in run], dtype=np.float64), [f[1] for f in run], lt))
        start = stop
    return made


def _warm_up(ex: Any, w: int, accepted_before: int, lookback: Sequence[_Frame]) -> None:
    """Put a fresh extractor where the whole-file one is after ``accepted_before`` accepted packets.

    Its open window holds the last ``accepted_before % w`` of them, with the IAT of the
    first taken from the accepted packet before (fed alone, then flushed: the extractor
    keeps the timestamp of the last packet it saw). Windows are numbered from
    ``accepted_before // w`` and the stats start at zero.
    """
    r = accepted_before % w
    ref = 1 if accepted_before > r else 0
    need = r + ref
    if need > len(lookback):
        raise IomtIdsError(f"chunk warm-up needs {need} accepted packets, {len(lookback)} were kept (bug).")
    frames = list(lookback[len(lookback) - need :]) if need else []
    if ref:
        _feed_frames(ex, frames[:1])
        ex.flush()
        frames = frames[1:]
    if frames and _feed_frames(ex, frames):
        raise IomtIdsError("chunk warm-up completed a window (bug).")
    ex.windows_emitted = accepted_before // w
    ex.stats = CaptureStats()


def _score(det: Detector, kind: str, wb: Any, w: int) -> _Group:
    """Score one complete group as ``Detector.alert_rows`` does; keep the windows that can alert."""
    n = len(wb)
    if n == 0:
        return _Group(scored=True)
    proba = det.score_many(wb.features)
    novelty = None
    if kind == "site":
        ratio = det.novelty(wb.features, w)  # type: ignore[attr-defined]
        keep = np.flatnonzero(ratio > 1.0)  # only windows unlike the site's traffic can alert
        novelty = ratio[keep]
    else:
        keep = np.flatnonzero(det.classify(proba).is_alert)  # row-wise: the same verdicts on any subset
    return _Group(n, float(wb.meta["end_ts"].iloc[-1]), True, wb.features.iloc[keep], wb.meta.iloc[keep],
                  proba[keep], novelty)  # fmt: skip


def _raw(wb: Any) -> _Group:
    n = len(wb)
    if n == 0:
        return _Group()
    return _Group(n, float(wb.meta["end_ts"].iloc[-1]), False, wb.features, wb.meta)


# -- the coordinator: read a large capture, ship chunks ----------------------------------------------------
def _count_accepted(ts: np.ndarray, frames: Frames, linktype: int) -> int:
    return len(dissect(ts, frames, linktype)[0])


def _last_accepted(seg: _Segment, k: int) -> list[int]:
    """Indices (descending) of the last ``k`` accepted frames of a segment (fewer if it has fewer).

    Counts accepted frames over ranges with the dissector and halves the ranges that
    mix accepted and other frames: a few small dissections instead of one per frame.
    """
    frames, ts, lt = seg.frames, seg.ts, seg.linktype
    out: list[int] = []

    def visit(a: int, b: int) -> None:
        if len(out) >= k or a >= b:
            return
        c = _count_accepted(ts[a:b], frames[a:b], lt)
        if c == 0:
            return
        if c == b - a:
            out.extend(range(b - 1, max(a, b - (k - len(out))) - 1, -1))
            return
        m = (a + b) // 2
        visit(m, b)
        visit(a, m)

    hi, span = len(ts), max(2 * k, 64)
    while hi > 0 and len(out) < k:
        lo = max(0, hi - span)
        visit(lo, hi)
        hi, span = lo, span * 2
    return out


def _lookback(segments: Sequence[_Segment], before: Sequence[_Frame], keep: int) -> list[_Frame]:
    """The last ``keep`` accepted frames up to the end of ``segments`` (``before``: those before them)."""
    rev: list[_Frame] = []
    for seg in reversed(segments):
        if len(rev) >= keep:
            break
        frames = seg.frames
        for i in _last_accepted(seg, keep - len(rev)):
            rev.append((float(seg.ts[i]), frames[i], seg.linktype))
    missing = keep - len(rev)
    if missing > 0 and before:
        rev.extend(reversed(before[-missing:]))
    return rev[::-1]


class _Stitch:
    """Replays one chunked capture's chunk outcomes in order, as the detection loop would (see the module doc).

    The coordinator fills :attr:`batches` (frames, last timestamp and accepted packets
    so far, per packet batch) as it reads; :meth:`add` takes chunk outcomes in any
    order and replays them in chunk order.
    """

    def __init__(self, capture: Capture, det: Detector, config: DetectConfig, out_path: Path) -> None:
        self.capture = capture
        self.det = det
        self.config = config
        self.out_path = out_path
        self.batches: list[tuple[int, float, int]] = []  # (frames, max ts, accepted so far)
        self.skipped: dict[str, int] = {}
        self.accepted = 0
        self.total_chunks: int | None = None
        self.capture_errors: list[str] = []
        self.capture_skipped: dict[str, int] = {}
        self.error = ""  # a chunk failed: the capture's result is an error
        self.read_error = ""  # the capture failed mid-read (as run_detection: scored up to there)
        self.done = False
        self.t0 = time.perf_counter()
        self._outcomes: dict[int, _ChunkOutcome] = {}
        self._next = 0
        self._last: _ChunkOutcome | None = None
        self._parts: dict[int, list[_Group]] = {w: [] for w in config.windows}
        self._sink: JsonLinesSink | None = None
        s = self.summary = DetectSummary(source=str(capture.path), model_version=det.model_version)
        s.windows_by_size = dict.fromkeys(config.windows, 0)
        s.site_adapted = bool(getattr(det, "site_adapted", False))
        s.novel_windows = 0 if s.site_adapted else -1
        self.folder = AlertFolder(
            config.fold_seconds, config.fold_max_keys, clock=None, idle=config.fold_idle
        )
        self.monitor = FitMonitor(s.site_adapted)
        self.categories: Counter[str] = Counter()
        self.last_ts = 0.0
        self.last_event: float | None = None
        self._accepted_now = 0
        det.reset_state()

    # -- input ----------------------------------------------------------------------------------
    def add(self, outcome: _ChunkOutcome) -> None:
        if self.error or self.done:
            return
        if outcome.error:
            self.fail(outcome.error)
            return
        self._outcomes[outcome.chunk] = outcome
        while self._next in self._outcomes and not self.error:
            out = self._outcomes.pop(self._next)
            self._replay(out)
            self._last = out
            self._next += 1

    def fail(self, message: str) -> None:
        if not self.error:
            self.error = message
        self._outcomes.clear()
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        self.out_path.unlink(missing_ok=True)

    @property
    def ready(self) -> bool:
        """All chunks replayed (the capture can be finished)."""
        return self.total_chunks is not None and self._next >= self.total_chunks and not self.error

    # -- the replay (mirrors run_detection's loop) ------------------------------------------------------
    def _emit(self, alerts: Sequence[Any]) -> None:
        if alerts:
            sink = self._open()
            for a in alerts:
                sink.emit(a)

    def _open(self) -> JsonLinesSink:
        if self._sink is None:
            self._sink = JsonLinesSink(self.out_path, append=False)
        return self._sink

    def _replay(self, out: _ChunkOutcome) -> None:
        for batch, first, last, groups in out.segments:
            if first and last:
                self._batch(batch, groups)
                continue
            for w in self.config.windows:
                self._parts[w].append(groups[w])
            if last:
                joined = {w: self._join(self._parts[w]) for w in self.config.windows}
                self._parts = {w: [] for w in self.config.windows}
                self._batch(batch, joined)

    @staticmethod
    def _join(parts: Sequence[_Group]) -> Any:
        from iomt_ids.features.windows import WindowBatch

        parts = [p for p in parts if p.n]
        if not parts:
            return _Group()
        wb = WindowBatch.concat([WindowBatch(p.features, p.meta) for p in parts])  # type: ignore[arg-type]
        return _Group(sum(p.n for p in parts), parts[-1].last_end_ts, False, wb.features, wb.meta)

    def _batch(self, j: int, groups: dict[int, _Group]) -> None:
        n, max_ts, accepted = self.batches[j]
        if n:
            self.summary.packets += n
            self._accepted_now = accepted
            for w in self.config.windows:
                self._windows(groups[w], w)
            self.last_event = max_ts
        self._emit(self.folder.expire(self.last_event))

    def _rows(self, g: _Group, w: int) -> AlertRows | None:
        from iomt_ids.features.windows import WindowBatch

        wb = WindowBatch(g.features, g.meta)  # type: ignore[arg-type]
        if not g.scored:  # a joined group: scored here, as a whole
            return self.det.alert_rows(wb, w)
        if g.features is None or not len(g.features):
            return None  # no window could alert: alert_rows would change nothing
        replay = hasattr(self.det, "given")  # a site detector: the workers computed the novelty
        if replay:
            self.det.given = g.novelty  # type: ignore[attr-defined]
        try:
            return self.det.alert_rows(wb, w, proba=g.proba)
        finally:
            if replay:
                self.det.given = None  # type: ignore[attr-defined]

    def _windows(self, g: _Group, w: int) -> None:
        if not g.n:
            return
        s = self.summary
        s.windows_by_size[w] += g.n
        rows = self._rows(g, w)
        self.last_ts = g.last_end_ts
        if rows is not None:
            if rows.n_novel > 0:
                s.novel_windows += rows.n_novel
            if len(rows):
                self.categories.update(rows.category)
                emitted = rows.fold_into(self.folder)
                if emitted:
                    self._emit(emitted)
        for message in self.monitor.check(s.windows, self.folder.raw, max(s.novel_windows, 0)):
            s.warnings.append(message)
            self._emit_stats(self._accepted_now)

    def _counts(self) -> None:
        s, f = self.summary, self.folder
        s.alerts_raw, s.alerts_emitted, s.alerts_suppressed = f.raw, f.emitted, f.suppressed
        s.categories = dict(self.categories.most_common())

    def _emit_stats(self, accepted: int) -> None:
        if getattr(self.det, "eve_strict", False):
            return
        s = self.summary
        s.accepted = accepted
        self._counts()
        self._open().emit_event(StatsEvent(self.last_ts or time.time(), s))

    def finish(self) -> FileResult:
        """The end of the capture: final partial windows, open fold intervals, the last stats line."""
        s = self.summary
        tails = self._last.tails if self._last is not None else {}
        for w in self.config.windows:
            if w not in tails:
                continue
            tail = tails[w]
            if tail is None:
                s.partial_dropped += 1
            else:
                self._windows(tail, w)
        self._emit(self.folder.flush())
        s.accepted = self.accepted
        s.skipped = dict(self.skipped)
        self._counts()
        s.stopped_by = "capture error" if self.read_error else "end of input"
        s.error = self.read_error
        self._emit_stats(self.accepted)
        sink = self._open()
        sink.flush()
        sink.close()
        self._sink = None
        self.done = True
        s.wall_s = time.perf_counter() - self.t0
        return FileResult(self.capture.rel, str(self.capture.path), summary=s, chunks=self.total_chunks or 0,
                          wall_s=s.wall_s)  # fmt: skip


@functools.cache
def _replay_site_type() -> type:
    """A :class:`SiteDetector` whose novelty can be given (the workers' values) instead of computed."""
    from iomt_ids.detection.site import SiteDetector

    class ReplaySiteDetector(SiteDetector):
        #: novelty of the windows passed next to ``alert_rows`` (set by the stitch), or None: compute it
        given: np.ndarray | None = None

        def novelty(self, features: pd.DataFrame | np.ndarray, window: int) -> np.ndarray:
            if self.given is not None:
                return self.given
            return super().novelty(features, window)

    return ReplaySiteDetector


def _stitch_detector(det: Detector, kind: str) -> Detector:
    """The coordinator's detector for replaying chunk verdicts (site: takes the workers' novelty)."""
    if kind == "site":
        site = det.site  # type: ignore[attr-defined]
        return _replay_site_type()(site, det.threshold, explain=det.explain_alerts, eve_strict=det.eve_strict)  # type: ignore[no-any-return]
    return det


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Score with one torch thread, as the workers and ``detect`` do (results can depend on it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _estimate_packets(capture: Capture) -> int:
    """Packets in a capture, estimated from its (uncompressed) size and its first records.

    Only decides whether to chunk a capture: a wrong guess costs time, never exactness.
    """
    from iomt_ids.features import read_capture

    reader = read_capture(capture.path, batch_size=4096)
    try:
        size = int(getattr(reader, "file_size", capture.size))
        batch = next(reader, None)
    finally:
        reader.close()
    if batch is None or not len(batch):
        return 0
    # a pcap record is 16 bytes + the frame; a pcapng Enhanced Packet Block 32 + the frame, padded
    per = float(np.mean(batch.record_sizes)) + (0 if getattr(reader, "format", "pcap") == "pcap" else 16)
    return int(size / max(per, 1.0))


def _outcome_result(capture: Capture, out: _FileOutcome, alerts_root: Path, out_root: Path) -> FileResult:
    res = FileResult(capture.rel, str(capture.path), wall_s=out.wall_s)
    path = alerts_root / (capture.rel + ".eve.json")
    if out.error:
        res.status, res.error = "error", out.error
        path.unlink(missing_ok=True)  # no stale file from an earlier scan into the same folder
        return res
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:  # as JsonLinesSink writes it
        fh.write(out.eve)
    res.summary = out.summary
    res.alerts_file = path.relative_to(out_root).as_posix()
    _capture_status(res, out.capture_errors, out.capture_skipped)
    return res


def _capture_status(res: FileResult, errors: Sequence[str], skipped: dict[str, int]) -> None:
    """``partial`` when the capture failed mid-run or a corrupt record or gzip stream stopped the reading."""
    s = res.summary
    if s is not None and s.error:
        res.status, res.error, res.notes = "partial", s.error, list(errors)
    elif any(skipped.get(k) for k in _CORRUPT_REASONS):
        res.status, res.error = "partial", "; ".join(errors)
    else:
        res.notes = list(errors)  # e.g. a last record cut short: harmless, but said


# -- the scan ------------------------------------------------------------------------------------------------
def run_scan(
    config: ScanConfig,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    executor: Executor | None = None,
    progress: ScanProgress | None = None,
) -> ScanResult:
    """Score every capture named by ``inputs``; write the alerts files and the summary into ``config.out``.

    Parameters
    ----------
    config : ScanConfig
    inputs : sequence of str or path
        Folders, capture files or globs (see :func:`find_captures`).
    executor : Executor, optional
        Run the tasks here (and leave it open); default: one made from
        ``config.executor``/``workers``/``ray_address`` and closed at the end.
    progress : ScanProgress, optional
        Told when the scan starts and when each capture is done.

    Returns
    -------
    ScanResult
        Per capture (sorted by relative path) and totals; ``summary.csv`` and
        ``summary.json`` are already written.

    Raises
    ------
    ConfigError, BundleError
        Nothing matched, bad settings, a model that cannot be loaded or cannot
        score these windows, an output folder that cannot be written, Ray missing.
    """
    from iomt_ids.detection.runner import check_release
    from iomt_ids.detection.site import load_detector

    t_start = time.perf_counter()
    captures = find_captures(inputs)
    dconfig = config.detect_config()
    det = load_detector(config.model, threshold=config.threshold, explain=config.explain,
                        eve_strict=config.eve == "strict")  # fmt: skip
    det.check_windows(dconfig.windows)
    check_release(det.bundle, dconfig.windows[0], where=str(config.model))
    spec = _ModelSpec(str(Path(config.model).resolve()), det.model_version, config.threshold, config.explain,
                      config.eve == "strict")  # fmt: skip
    out = Path(config.out)
    alerts_root = out / "alerts"
    try:
        alerts_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the output folder ({exc.strerror or exc}).") from None

    kind = _kind(det)
    note = ""
    chunk = config.chunk_packets
    if chunk and det.bundle.release != "v2":
        note = f"off: the {det.bundle.release} features carry per-flow state over the whole capture"
    elif chunk and not kind:
        note = f"off: {type(det).__name__} verdicts cannot be replayed chunk by chunk"
    elif not chunk:
        note = "off (--chunk-packets 0)"
    chunked: set[int] = set()
    if not note:
        for i, cap in enumerate(captures):
            if cap.size > chunk * _MIN_RECORD:
                try:
                    if _estimate_packets(cap) > chunk:
                        chunked.add(i)
                except CaptureError:
                    pass  # reported by the task that reads it
    stitch_det = _stitch_detector(det, kind) if chunked else det

    own = executor is None
    ex = executor or make_executor(config.executor, config.workers, config.ray_address)
    results: dict[int, FileResult] = {}
    stitches: dict[int, _Stitch] = {}

    def report(i: int, res: FileResult) -> None:
        results[i] = res
        if progress is not None:
            progress.file_done(res)

    def close_stitch(i: int) -> None:
        st = stitches.pop(i, None)
        if st is None:
            return
        if not st.error and not st.ready:
            st.fail(f"{st.capture.path}: the scan ended before all its chunks came back")
        if st.error:
            report(i, FileResult(st.capture.rel, str(st.capture.path), "error", st.error,
                                 chunks=st.total_chunks or 0, wall_s=time.perf_counter() - st.t0))  # fmt: skip
            return
        with _one_torch_thread():
            res = st.finish()
        res.alerts_file = st.out_path.relative_to(out).as_posix()
        _capture_status(res, st.capture_errors, st.capture_skipped)
        report(i, res)

    def chunk_tasks(i: int) -> Iterator[_ChunkTask]:
        cap = captures[i]
        st = _Stitch(cap, copy.copy(stitch_det), dconfig, alerts_root / (cap.rel + ".eve.json"))
        st.out_path.parent.mkdir(parents=True, exist_ok=True)
        stitches[i] = st
        yield from _read_chunks(i, cap, st, spec, dconfig, chunk)
        if st.ready or st.error:  # every chunk already came back, or the capture failed
            close_stitch(i)

    def tasks() -> Iterator[_FileTask | _ChunkTask]:
        # large captures first (their chunks while the pool is fresh), then the rest, largest first
        for i in sorted(chunked, key=lambda k: -captures[k].size):
            yield from chunk_tasks(i)
        for i in sorted(set(range(len(captures))) - chunked, key=lambda k: -captures[k].size):
            yield _FileTask(i, str(captures[i].path), spec, dconfig)

    described = ex.describe()
    if progress is not None:
        progress.start(captures, described)
    try:
        for tr in ex.map(_run_task, tasks()):
            _collect(tr, captures, results, stitches, report, close_stitch, alerts_root, out)
        for i in list(stitches):  # none, unless a capture's chunks did not all come back
            close_stitch(i)
    except BaseException:
        for st in stitches.values():
            st.fail("the scan stopped")
        raise
    finally:
        if own:
            ex.close()
    files = [results[i] for i in range(len(captures))]
    result = ScanResult(files, config, det.model_version, described, time.perf_counter() - t_start, note)
    result.write(out)
    return result


def _collect(
    tr: TaskResult[Any, Any],
    captures: Sequence[Capture],
    results: dict[int, FileResult],
    stitches: dict[int, _Stitch],
    report: Callable[[int, FileResult], None],
    close_stitch: Callable[[int], None],
    alerts_root: Path,
    out: Path,
) -> None:
    """Take one task's result: write a whole capture's alerts, or hand a chunk to its stitch."""
    task = tr.item
    if isinstance(task, _FileTask):
        cap = captures[task.index]
        if tr.error is not None:
            (alerts_root / (cap.rel + ".eve.json")).unlink(missing_ok=True)
            report(task.index, FileResult(cap.rel, str(cap.path), "error", _message(tr.error, str(cap.path))))
            return
        report(task.index, _outcome_result(cap, tr.value, alerts_root, out))
        return
    st = stitches.get(task.file_index)
    if st is None:  # the capture already failed
        return
    if tr.error is not None:
        where = f"{task.path} (chunk {task.chunk + 1})"
        st.fail(_message(tr.error, where))
    else:
        with _one_torch_thread():
            st.add(tr.value)
    if st.ready or (st.error and st.total_chunks is not None):  # done, or failed and its reading ended
        close_stitch(task.file_index)


def _read_chunks(
    index: int, cap: Capture, st: _Stitch, spec: _ModelSpec, config: DetectConfig, chunk_packets: int
) -> Iterator[_ChunkTask]:
    """Read a capture as ``detect`` does; yield its chunks (frames, accepted count and warm-up frames)."""
    from iomt_ids.detection.sources import PcapSource

    keep = max(config.windows)
    try:
        source = PcapSource(cap.path)
    except CaptureError as exc:
        st.fail(str(exc))
        st.total_chunks = 0
        return
    k = 0
    first_packet = 0
    in_chunk = 0
    accepted_before = 0
    lookback: list[_Frame] = []
    segments: list[_Segment] = []

    def make() -> _ChunkTask:
        return _ChunkTask(
            index, k, str(cap.path), first_packet, accepted_before, lookback, segments, spec, config
        )

    try:
        for j, batch in enumerate(source.batches()):
            if st.error:
                break
            n = len(batch)
            # cut the batch at the chunk boundaries and count its accepted frames before any chunk
            # of it is shipped: the stitch needs the batch's totals once its last part comes back
            parts: list[tuple[int, int, int]] = []
            pos, fill = 0, in_chunk
            while pos < n:
                take = min(n - pos, chunk_packets - fill)
                rec, skipped = dissect(
                    batch.ts[pos : pos + take], batch.frames[pos : pos + take], batch.linktype
                )
                for reason, c in skipped.items():
                    st.skipped[reason] = st.skipped.get(reason, 0) + int(c)
                parts.append((pos, take, len(rec)))
                pos += take
                fill = (fill + take) % chunk_packets
            total = st.accepted + sum(p[2] for p in parts)
            st.batches.append((n, float(np.max(batch.ts)) if n else math.nan, total))
            for pos, take, accepted in parts:
                segments.append(
                    _Segment.pack(
                        j,
                        batch.ts[pos : pos + take],
                        batch.frames[pos : pos + take],
                        batch.linktype,
                        pos == 0,
                        pos + take == n,
                    )
                )
                st.accepted += accepted
                in_chunk += take
                if in_chunk == chunk_packets:
                    task = make()
                    lookback = _lookback(segments, lookback, keep)
                    yield task
                    k += 1
                    first_packet += in_chunk
                    accepted_before = st.accepted
                    segments, in_chunk = [], 0
    except CaptureError as exc:  # failed mid-read: like run_detection, score what came before
        st.read_error = str(exc)
    finally:
        source.close()
    if segments and not st.error:
        yield make()
        k += 1
    stats = source.capture_stats
    st.capture_errors = list(stats.errors)
    st.capture_skipped = dict(stats.skipped)
    st.total_chunks = k
