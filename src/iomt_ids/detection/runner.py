"""The detection loop: packet source -> window streams -> model -> alerts -> sinks.

:func:`run_detection` reads batches from a source (:class:`PcapSource` or
:class:`LiveSource`), feeds every batch to one
:class:`~iomt_ids.features.windows.WindowExtractor` per window size, scores the
completed windows with the model, classifies them, folds repeated alerts and
hands the rest to the sinks. It returns a :class:`DetectSummary`.

Window sizes. The training data mixes W = 10 and W = 100 windows (spec §4.1,
§6.2: W = 100 only for the TCP/IP DoS/DDoS captures), and ``Number`` tells the
model which W a row has. The default, :data:`DEFAULT_WINDOWS` = (10, 100), runs
both streams over the same packets, as the spec recommends: the W = 100 stream
sees floods the way the flood training rows were made, the W = 10 stream sees
everything else. It costs about 10 % more windows than W = 10 alone. Alerts of
both streams for the same source and class fold together.

Memory is bounded on endless input: each extractor keeps less than W packets,
the live source's queue is bounded in bytes, the folder keeps at most
``fold_max_keys`` intervals, and alerts are streamed to the sinks, never kept.

Stopping: at the end of a file, after ``max_packets`` or ``duration``, when
the ``stop`` event is set (see :func:`stop_on_signals` for SIGINT/SIGTERM), or
when the source fails mid-run (``summary.error``; a source that cannot start
raises instead). In every case partial windows are scored, open fold intervals are written and the
sinks are flushed before the summary is returned.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from iomt_ids.detection.alerts import Alert, AlertSink, StatsEvent, as_sink
from iomt_ids.detection.detector import Detector
from iomt_ids.detection.folding import AlertFolder
from iomt_ids.exceptions import BundleError, CaptureError, ConfigError
from iomt_ids.features.packets import PacketBatch
from iomt_ids.features.windows import WindowBatch, WindowExtractor
from iomt_ids.runtime import usable_cpus

__all__ = [
    "DEFAULT_WINDOWS",
    "DetectConfig",
    "DetectSummary",
    "FitMonitor",
    "PacketSource",
    "StopFlag",
    "check_release",
    "run_detection",
    "stop_on_signals",
]

logger = logging.getLogger(__name__)

#: Window sizes run by default (spec §4.1: both W = 10 and W = 100 from the same packets).
DEFAULT_WINDOWS: tuple[int, ...] = (10, 100)


class PacketSource(Protocol):
    """What :func:`run_detection` reads: ``batches(stop)``, ``stats``, ``name``, ``live``."""

    live: bool

    @property
    def name(self) -> str: ...

    def batches(self, stop: threading.Event | None = None) -> Iterator[PacketBatch]: ...


@dataclass(frozen=True)
class DetectConfig:
    """Settings of one detection run.

    Parameters
    ----------
    windows : tuple of int, default (10, 100)
        Window sizes; one window stream per size, all from the same packets.
    fold_seconds : float, default 60.0
        Fold interval per (source IP, class); 0 writes every alert.
    fold_idle : float, default 10.0
        A (source IP, class) pair quiet for this long starts a new episode (its next alert is
        written at once); 0 keeps the fixed interval.
    fold_max_keys : int, default 10000
        Most (source IP, class) pairs folded at once.
    duration : float or None
        Stop after this many seconds of wall time.
    max_packets : int or None
        Stop after this many packets.
    progress_interval : float, default 1.0
        Seconds between progress callbacks.
    min_partial : float, default 0.5
        When the input ends or the run stops, the last, partial window of each
        stream is scored only if it holds at least ``min_partial * W`` packets. A
        window of a handful of packets (``Number`` far below W) is unlike the
        training rows and mostly makes false alerts; 0 scores every partial
        window, as CIC's extractor wrote them.
    explain_thread : bool, default True
        Compute the alert explanations of a window batch on a second thread while
        the next batch is read and scored (when this process may use 2 CPUs or more).
        The alert lines, their order and their explanations are those of the
        one-thread run; a line is written once its explanation is done (and before
        any later line or stats event).
    """

    windows: tuple[int, ...] = DEFAULT_WINDOWS
    fold_seconds: float = 60.0
    fold_idle: float = 10.0
    fold_max_keys: int = 10_000
    duration: float | None = None
    max_packets: int | None = None
    progress_interval: float = 1.0
    min_partial: float = 0.5
    explain_thread: bool = True

    def __post_init__(self) -> None:
        ws = tuple(self.windows)
        if not ws or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in ws):
            raise ConfigError(f"windows must be one or more integers >= 1; got {self.windows!r} instead.")
        if len(set(ws)) != len(ws):
            raise ConfigError(f"windows must not repeat a size; got {list(ws)}.")
        object.__setattr__(self, "windows", ws)
        if not self.fold_seconds >= 0:
            raise ConfigError(f"fold_seconds must be >= 0; got {self.fold_seconds!r} instead.")
        if not self.fold_idle >= 0:
            raise ConfigError(f"fold_idle must be >= 0; got {self.fold_idle!r} instead.")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"duration must be > 0 seconds; got {self.duration!r} instead.")
        if not 0.0 <= self.min_partial <= 1.0:
            raise ConfigError(f"min_partial must be in [0, 1]; got {self.min_partial!r} instead.")
        if self.max_packets is not None and self.max_packets < 1:
            raise ConfigError(f"max_packets must be >= 1; got {self.max_packets!r} instead.")


@dataclass
class DetectSummary:
    """What a detection run did.

    Attributes
    ----------
    source, model_version : str
    windows_by_size : dict[int, int]
        Windows scored per window size.
    packets : int
        Frames read from the source.
    accepted : int
        Frames that became window records (IPv4 and ARP over Ethernet/SLL).
    skipped : dict[str, int]
        Frames not used, by reason.
    alerts_raw : int
        Windows classified as attacks.
    alerts_emitted : int
        Alert lines written (first alerts plus fold summaries).
    alerts_suppressed : int
        Raw alerts counted into a summary instead of written.
    dropped : int
        Packets lost before the detector (live capture: libpcap/kernel + queue).
    wall_s : float
    stopped_by : str
        "end of input", "max packets", "duration" or "signal SIGINT"/"signal SIGTERM".
    categories : dict[str, int]
        Raw alerts per class.
    partial_dropped : int
        Final partial windows left unscored (shorter than ``min_partial * W``).
    error : str
        Set when the source failed during the run (e.g. the interface went down);
        the run then stops like on a signal, with ``stopped_by = "capture error"``.
    site_adapted : bool
        The detector knows the site's normal traffic (a SITE_DIR from ``iomt-ids adapt``).
    novel_windows : int
        Windows unlike the site's normal traffic (-1 for a detector that is not site-adapted).
    warnings : list of str
        Model-fit warnings raised during the run (see :class:`FitMonitor`).
    """

    source: str = ""
    model_version: str = ""
    windows_by_size: dict[int, int] = field(default_factory=dict)
    packets: int = 0
    accepted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    alerts_raw: int = 0
    alerts_emitted: int = 0
    alerts_suppressed: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    stopped_by: str = ""
    categories: dict[str, int] = field(default_factory=dict)
    partial_dropped: int = 0
    error: str = ""
    site_adapted: bool = False
    novel_windows: int = -1
    warnings: list[str] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return sum(self.windows_by_size.values())

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (window sizes as string keys)."""
        return {
            "source": self.source,
            "model_version": self.model_version,
            "packets": self.packets,
            "accepted": self.accepted,
            "skipped": dict(self.skipped),
            "windows": self.windows,
            "windows_by_size": {str(k): v for k, v in self.windows_by_size.items()},
            "partial_dropped": self.partial_dropped,
            "alerts_raw": self.alerts_raw,
            "alerts_emitted": self.alerts_emitted,
            "alerts_suppressed": self.alerts_suppressed,
            "categories": dict(self.categories),
            "dropped": self.dropped,
            "wall_s": round(self.wall_s, 4),
            "packets_per_s": round(self.packets_per_s, 1),
            "windows_per_s": round(self.windows_per_s, 1),
            "stopped_by": self.stopped_by,
            "error": self.error,
            "site_adapted": self.site_adapted,
            "novel_windows": self.novel_windows,
            "warnings": list(self.warnings),
        }


class StopFlag(threading.Event):
    """A stop event that remembers why it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
        self.set()


@contextmanager
def stop_on_signals(
    stop: StopFlag, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[StopFlag]:
    """Turn SIGINT/SIGTERM into a graceful stop for the duration of the block.

    The first signal sets ``stop`` (the loop then scores partial windows, writes
    fold summaries and flushes the sinks). A second SIGINT while stopping raises
    ``KeyboardInterrupt`` as usual. Outside the main thread (where Python cannot
    install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.request(f"signal {signal.Signals(signum).name}")
        logger.info("%s received: stopping after the current batch", signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def check_release(bundle: Any, window: int = 10, where: str | None = None) -> None:
    """Raise :class:`BundleError` when the extractor cannot produce the bundle's feature release.

    ``where`` names the bundle in the message (its folder); default its version.
    """
    try:
        WindowExtractor(window=window, release=bundle.release)
    except ConfigError as exc:
        where = where or bundle.version
        raise BundleError(
            f"model {where}: feature release {bundle.release!r} cannot be produced from packets "
            f"({exc}); use a bundle trained on v2 rows."
        ) from None
    if bundle.release == "v1":
        logger.warning(
            "model %s uses the legacy v1 features; v1 IAT/Number are position- and timestamp-dependent "
            "(spec §6), so live scores may differ from the CSVs. Prefer a v2 bundle.",
            bundle.version,
        )


@dataclass
class FitMonitor:
    """Says, once, when the model does not fit the network it watches.

    A detector that alerts on a large share of all windows is not detecting
    attacks: it does not know this network's normal traffic. After ``min_windows``
    windows, and then at every check, a plain (not site-adapted) detector warns
    when at least ``max_alert_share`` of the windows alerted; a site-adapted one
    warns when at least ``max_novel_share`` of the windows were unlike the site's
    baseline (an attack under way, or the network changed since ``adapt``). Each
    warning is given once per run.
    """

    site_adapted: bool
    min_windows: int = 200
    max_alert_share: float = 0.2
    max_novel_share: float = 0.5
    warned: set[str] = field(default_factory=set)

    def check(self, windows: int, alerts: int, novel: int) -> list[str]:
        """New warnings for the counts so far (empty when all is plausible or already said)."""
        if windows < self.min_windows:
            return []
        out = []
        if (
            not self.site_adapted
            and alerts >= self.max_alert_share * windows
            and "alert_rate" not in self.warned
        ):
            self.warned.add("alert_rate")
            out.append(
                f"{alerts:,} of {windows:,} windows ({alerts / windows:.0%}) raised an alert: normal traffic does "
                "not do that. This model was not adapted to this network and likely does not fit it; capture a "
                "few minutes of normal traffic and run 'iomt-ids adapt' (README: site adaptation)."
            )
        if self.site_adapted and novel >= self.max_novel_share * windows and "novelty" not in self.warned:
            self.warned.add("novelty")
            out.append(
                f"{novel:,} of {windows:,} windows ({novel / windows:.0%}) are unlike this site's normal traffic: "
                "an attack under way, or the network changed since 'iomt-ids adapt' (then re-run it with a new "
                "benign capture)."
            )
        return out


class _Loop:
    """State of one run (kept out of the public API)."""

    def __init__(
        self,
        detector: Detector,
        sinks: list[AlertSink],
        config: DetectConfig,
        live: bool,
        summary: DetectSummary,
    ) -> None:
        self.detector = detector
        self.sinks = sinks
        self.config = config
        self.summary = summary
        self.extractors = {
            w: WindowExtractor(window=w, release=detector.bundle.release) for w in config.windows
        }
        # live: fold on wall time so intervals close while the link is idle; files: event time
        self.folder = AlertFolder(
            config.fold_seconds,
            config.fold_max_keys,
            clock=time.time if live else None,
            idle=config.fold_idle,
        )
        self.categories: Counter[str] = Counter()
        summary.windows_by_size = dict.fromkeys(config.windows, 0)
        summary.site_adapted = bool(getattr(detector, "site_adapted", False))
        summary.novel_windows = 0 if summary.site_adapted else -1
        self.monitor = FitMonitor(summary.site_adapted)
        self.last_ts = 0.0
        # alert lines waiting for their batch's explanations (in order), and the thread computing them
        self._queue: deque[tuple[Future[None] | None, list[Alert]]] = deque()
        self._explainer: ThreadPoolExecutor | None = None
        if config.explain_thread and getattr(detector, "explain_alerts", False) and usable_cpus() >= 2:
            self._explainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iomt-explain")

    def feed(self, batch: PacketBatch) -> None:
        for w, ex in self.extractors.items():
            self.windows(ex.feed(batch.ts, batch.frames, batch.linktype), w)

    def windows(self, wb: WindowBatch, w: int) -> None:
        if not len(wb):
            return
        self.summary.windows_by_size[w] += len(wb)
        rows = self.detector.alert_rows(wb, window=w)
        self.last_ts = float(wb.meta["end_ts"].iloc[-1])
        if rows.n_novel > 0:
            self.summary.novel_windows += rows.n_novel
        if len(rows):
            self.categories.update(rows.category)
            if self._explainer is None:
                self.emit(rows.fold_into(self.folder))
            else:
                written = rows.fold_into(self.folder, explain=False)
                self.emit(written, self._explainer.submit(rows.explain_pending) if written else None)
        self._check_fit()

    def _check_fit(self) -> None:
        s = self.summary
        for message in self.monitor.check(s.windows, self.folder.raw, max(s.novel_windows, 0)):
            logger.warning("%s", message)
            s.warnings.append(message)
            self.emit_stats()

    def emit_stats(self) -> None:
        """Write an EVE ``stats`` event (counts and warnings so far) to the sinks that take events.

        Not in strict EVE mode: Suricata's ``stats`` object has no place for these counts.
        """
        if getattr(self.detector, "eve_strict", False):
            return
        self.drain(wait=True)  # the alert lines before this event are written first
        s = self.summary
        s.accepted = next(iter(self.extractors.values())).stats.packets_accepted
        s.alerts_raw, s.alerts_emitted, s.alerts_suppressed = (
            self.folder.raw,
            self.folder.emitted,
            self.folder.suppressed,
        )
        s.categories = dict(self.categories.most_common())
        # event time of the last window (a replayed capture's own clock); wall time before any window
        event = StatsEvent(self.last_ts or time.time(), self.summary)
        for s in self.sinks:
            write = getattr(s, "emit_event", None)
            if write is not None:
                write(event)

    def emit(self, alerts: list[Alert], explained: Future[None] | None = None) -> None:
        """Write ``alerts`` after every line queued before them; ``explained``: wait for it first."""
        if explained is not None or self._queue:
            self._queue.append((explained, alerts))
            self.drain(wait=len(self._queue) > _MAX_QUEUED)
        else:
            self._write(alerts)

    def drain(self, wait: bool) -> None:
        """Write the queued lines whose explanations are done (all of them with ``wait``), in order."""
        while self._queue:
            done, alerts = self._queue[0]
            if done is not None:
                if not wait and not done.done():
                    break
                done.result()  # an explainer error surfaces here, as it would without the thread
            self._queue.popleft()
            self._write(alerts)

    def _write(self, alerts: list[Alert]) -> None:
        for a in alerts:
            for s in self.sinks:
                s.emit(a)

    def close(self) -> None:
        """Stop the explanation thread (after :meth:`drain`); idempotent."""
        if self._explainer is not None:
            self._explainer.shutdown(wait=True)
            self._explainer = None

    def finish(self) -> None:
        for w, ex in self.extractors.items():
            tail = ex.flush()
            if len(tail) and int(tail.meta["n_packets"].iloc[0]) >= self.config.min_partial * w:
                self.windows(tail, w)
            elif len(tail):
                self.summary.partial_dropped += 1
        self.emit(self.folder.flush())
        try:
            self.drain(wait=True)
        finally:
            self.close()
        first = next(iter(self.extractors.values()))
        self.summary.accepted = first.stats.packets_accepted
        self.summary.skipped = dict(first.stats.skipped)
        self.summary.alerts_raw = self.folder.raw
        self.summary.alerts_emitted = self.folder.emitted
        self.summary.alerts_suppressed = self.folder.suppressed
        self.summary.categories = dict(self.categories.most_common())
        self.emit_stats()
        for s in self.sinks:
            s.flush()


#: Window batches whose alert lines may wait for explanations before the loop waits for the oldest.
_MAX_QUEUED = 4


def _head(batch: PacketBatch, n: int) -> PacketBatch:
    return PacketBatch(batch.ts[:n], batch.frames[:n], batch.linktype, batch.record_sizes[:n])


def run_detection(
    source: PacketSource,
    detector: Detector,
    sinks: Sequence[AlertSink | Callable[[Alert], Any] | str] = (),
    config: DetectConfig | None = None,
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[DetectSummary], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DetectSummary:
    """Run the detector over a packet source until it ends or is stopped.

    Parameters
    ----------
    source : PcapSource or LiveSource
        Where packets come from.
    detector : Detector
        The model and the alert threshold.
    sinks : sequence
        Alert sinks: objects with emit/flush/close, callables, paths (JSON lines)
        or ``"-"`` (stdout). Sinks are flushed, not closed: the caller owns them.
    config : DetectConfig, optional
    stop : threading.Event, optional
        Set it (e.g. from a signal handler) to stop gracefully.
    on_progress : callable, optional
        Called with the running summary about every ``config.progress_interval`` seconds.
    clock : callable, default time.monotonic
        Wall clock for ``duration``, rates and progress.

    Returns
    -------
    DetectSummary
    """
    config = config or DetectConfig()
    check_release(detector.bundle, config.windows[0])
    detector.check_windows(config.windows)
    detector.reset_state()
    stop = stop if stop is not None else StopFlag()
    out_sinks = [as_sink(s) for s in sinks]
    summary = DetectSummary(
        source=source.name, model_version=getattr(detector, "model_version", detector.bundle.version)
    )
    loop = _Loop(detector, out_sinks, config, bool(getattr(source, "live", False)), summary)
    opener = getattr(source, "open", None)
    if opener is not None:
        opener()  # a source that cannot start raises here, before any state exists
    t0 = clock()
    next_progress = t0 + config.progress_interval
    stopped_by = "end of input"
    last_event: float | None = None
    try:
        for batch in source.batches(stop):
            if config.max_packets is not None:
                left = config.max_packets - summary.packets
                if len(batch) > left:
                    batch = _head(batch, left)
            if len(batch):
                summary.packets += len(batch)
                loop.feed(batch)
                last_event = float(np.max(batch.ts))
            loop.emit(loop.folder.expire(last_event))
            now = clock()
            summary.wall_s = now - t0
            if on_progress is not None and now >= next_progress:
                _sync_counts(loop, source)
                on_progress(summary)
                next_progress = now + config.progress_interval
            if config.max_packets is not None and summary.packets >= config.max_packets:
                stopped_by = "max packets"
                break
            if config.duration is not None and now - t0 >= config.duration:
                stopped_by = "duration"
                break
            if stop.is_set():
                stopped_by = getattr(stop, "reason", "") or "stop requested"
                break
        else:
            if stop.is_set():
                stopped_by = getattr(stop, "reason", "") or "stop requested"
    except CaptureError as exc:
        # the source failed mid-run (interface down, device gone): keep what was seen
        logger.error("%s; stopping", exc)
        stopped_by = "capture error"
        summary.error = str(exc)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        try:
            loop.finish()
        finally:
            loop.close()
        _sync_counts(loop, source)
        summary.wall_s = clock() - t0
        summary.stopped_by = stopped_by
    logger.info(
        "detect %s: %d packets, %d windows, %d alerts (%d written) in %.2f s (%s)",
        summary.source,
        summary.packets,
        summary.windows,
        summary.alerts_raw,
        summary.alerts_emitted,
        summary.wall_s,
        summary.stopped_by,
    )
    return summary


def _sync_counts(loop: _Loop, source: PacketSource) -> None:
    s = loop.summary
    first = next(iter(loop.extractors.values()))
    s.accepted = first.stats.packets_accepted
    s.alerts_raw = loop.folder.raw
    s.alerts_emitted = loop.folder.emitted
    s.alerts_suppressed = loop.folder.suppressed
    stats = getattr(source, "stats", None)
    s.dropped = int(getattr(stats, "dropped", 0))
