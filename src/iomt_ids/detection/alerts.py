"""Alerts: the :class:`Alert` record, its Suricata-EVE-shaped JSON line, and output sinks.

One alert is one JSON object on one line, shaped like a Suricata EVE ``alert``
event, so that tools that read EVE (jq filters, Filebeat's Suricata module,
SIEM parsers) can take it with little or no mapping::

    {"timestamp": "2026-11-23T10:00:07.000100+0000", "flow_id": 10995116277772, "event_type": "alert",
     "src_ip": "10.0.0.66", "src_port": 40001, "dest_ip": "10.0.0.5", "dest_port": 80, "proto": "TCP",
     "alert": {"action": "allowed", "gid": 1, "signature_id": 9100012,
               "signature": "iomt-ids TCP/IP DDoS SYN", "category": "TCP/IP DDoS SYN", "severity": 1,
               "score": 0.998, "count": 1, "model": "dnn", "model_version": "dnn-19c-0123abcd",
               "window": 10, "window_start": "...", "window_packets": 10},
     "app_proto": "iomt-ids"}

* ``timestamp`` is the end of the window (its last packet), ISO-8601 in UTC written
  as Suricata writes it (``2026-12-01T10:00:00.123456+0000``).
* ``flow_id`` is a stable id of the window, unique across window streams:
  ``W << 40 | window_id`` (the window's running number in the stream of size
  ``alert.window``), below 2^53 so every JSON reader keeps it exact;
  ``src_ip`` ... ``proto`` describe the window's source (its initiator) and flow.
  Ports are written only for TCP and UDP, as Suricata does.
* ``alert.score`` is the model's probability that the window is an attack,
  ``1 - P(Benign)``; ``category`` is the most probable attack class.
* ``alert.count`` is 1 for an alert written as it happens. A folded summary (see
  :mod:`~iomt_ids.detection.folding`) has ``count`` > 1, ``summary: true``,
  ``first_seen``/``last_seen`` and the highest score of its interval.

Severity (1 is the most severe, as in Suricata) is a fixed map by 6-class
category, see :data:`SEVERITY_BY_CATEGORY`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from iomt_ids.data.labels import CLASS19_TO_CLASS6, CLASSES
from iomt_ids.exceptions import ConfigError

__all__ = [
    "DEFAULT_SEVERITY",
    "SEVERITY_BY_CATEGORY",
    "SIGNATURE_IDS",
    "Alert",
    "StatsEvent",
    "AlertSink",
    "CallableSink",
    "JsonLinesSink",
    "StreamSink",
    "as_sink",
    "flow_id_for",
    "iso_timestamp",
    "severity_for",
    "signature_id_for",
]

logger = logging.getLogger(__name__)

#: Severity per 6-class category (1 = most severe, Suricata's scale 1..3).
#:
#: * DDoS 1: many sources can take a medical device or its gateway off line
#:   (availability is patient safety).
#: * SPOOFING 1: ARP spoofing puts the attacker on the path of vital-sign and
#:   control traffic (integrity and confidentiality).
#: * DoS 2, MQTT 2: a single-source flood, or abuse of the MQTT broker (floods,
#:   malformed data): service degradation.
#: * RECON 3: scans and sweeps, a precursor of an attack.
#: * Attack (the 2-class task) 2: the kind of attack is unknown.
#: * ANOMALY 2: a site-adapted detector saw traffic far from the site's normal
#:   traffic that no trained attack class fits.
SEVERITY_BY_CATEGORY: dict[str, int] = {
    "DDoS": 1,
    "SPOOFING": 1,
    "DoS": 2,
    "MQTT": 2,
    "RECON": 3,
    "Attack": 2,
    "ANOMALY": 2,
}
#: Severity of a class that is in none of the maps (e.g. a custom bundle's class).
DEFAULT_SEVERITY = 2


def _signature_ids() -> dict[str, int]:
    # 19-class names get 9100000 + index, 6-class 9200000 + index, 2-class 9300000 +
    # index, in the order of iomt_ids.data.labels.CLASSES (which is part of the
    # bundle format, so these ids are stable). Benign is kept only for completeness.
    ids: dict[str, int] = {}
    for base, task in ((9_100_000, 19), (9_200_000, 6), (9_300_000, 2)):
        for i, name in enumerate(CLASSES[task]):
            ids.setdefault(name, base + i)
    return ids


#: Class name -> ``alert.signature_id``.
SIGNATURE_IDS: dict[str, int] = _signature_ids()
_UNKNOWN_SIGNATURE_BASE = 9_900_000


def severity_for(category: str) -> int:
    """Severity (1 most severe .. 3) of a predicted class of any task.

    >>> severity_for("TCP/IP DDoS SYN"), severity_for("RECON"), severity_for("Attack")
    (1, 3, 2)
    """
    if category in SEVERITY_BY_CATEGORY:
        return SEVERITY_BY_CATEGORY[category]
    if category in CLASS19_TO_CLASS6:
        return SEVERITY_BY_CATEGORY.get(CLASS19_TO_CLASS6[category], DEFAULT_SEVERITY)
    return DEFAULT_SEVERITY


def signature_id_for(category: str) -> int:
    """Stable ``signature_id`` of a class (see :data:`SIGNATURE_IDS`).

    A class unknown to :mod:`iomt_ids.data.labels` gets ``9900000`` plus a
    deterministic 5-digit hash of its name.

    >>> signature_id_for("TCP/IP DDoS SYN")
    9100012
    """
    if category in SIGNATURE_IDS:
        return SIGNATURE_IDS[category]
    import zlib

    return _UNKNOWN_SIGNATURE_BASE + zlib.crc32(category.encode()) % 100_000


def iso_timestamp(ts: float) -> str:
    """Epoch seconds -> ISO-8601 in UTC with microseconds, offset written as Suricata does (``+0000``).

    >>> iso_timestamp(1700000000.25)
    '2023-11-14T22:13:20.250000+0000'
    """
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def flow_id_for(window: int, window_id: int) -> int:
    """The EVE ``flow_id`` of window ``window_id`` of the W = ``window`` stream (unique across streams).

    >>> flow_id_for(10, 42), flow_id_for(100, 42)
    (10995116277802, 109951162777642)
    """
    return (int(window) << 40) | (int(window_id) & ((1 << 40) - 1))


@dataclass(frozen=True)
class Alert:
    """One detection: a window whose attack probability reached the threshold.

    Attributes
    ----------
    timestamp : float
        Epoch seconds of the window's last packet.
    window_id : int
        Running id of the window in its stream (written as ``flow_id``).
    window : int
        Window size W of that stream (packets).
    category : str
        The most probable attack class.
    score : float
        Probability that the window is an attack, ``1 - P(Benign)``.
    src_ip, dest_ip, src_port, dest_port, proto
        The window's dominant flow.
    model, model_version : str
        The bundle that scored the window.
    window_start : float
        Epoch seconds of the window's first packet.
    window_packets : int
        Packets in the window (W, or fewer for a final partial window).
    count : int
        Raw alerts this record stands for (1, or more for a folded summary).
    first_seen : float or None
        For a summary: the timestamp of the first alert of its interval.
    summary : bool
        True for a folded summary written when its interval closed.
    """

    timestamp: float
    window_id: int
    window: int
    category: str
    score: float
    src_ip: str = ""
    dest_ip: str = ""
    src_port: int = 0
    dest_port: int = 0
    proto: str = ""
    model: str = ""
    model_version: str = ""
    window_start: float | None = None
    window_packets: int | None = None
    count: int = 1
    first_seen: float | None = None
    summary: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    strict: bool = field(default=False, compare=False)

    @property
    def severity(self) -> int:
        """See :func:`severity_for`."""
        return severity_for(self.category)

    @property
    def signature(self) -> str:
        return f"iomt-ids {self.category}"

    @property
    def signature_id(self) -> int:
        return signature_id_for(self.category)

    def folded(self, *, count: int, last_seen: float, last_window_id: int, score: float) -> Alert:
        """A summary of ``count`` raw alerts from this one (the first) to ``last_seen``.

        The summary keeps this alert's flow and takes the last window's time and id;
        ``window_start``/``window_packets`` (one window's details) are dropped.
        """
        return replace(
            self,
            timestamp=last_seen,
            window_id=last_window_id,
            count=count,
            first_seen=self.timestamp,
            score=score,
            summary=True,
            window_start=None,
            window_packets=None,
        )

    def to_eve(self) -> dict[str, Any]:
        """The alert as a Suricata-EVE-shaped dict (see the module docstring)."""
        event: dict[str, Any] = {
            "timestamp": iso_timestamp(self.timestamp),
            "flow_id": flow_id_for(self.window, self.window_id),
            "event_type": "alert",
            "src_ip": self.src_ip,
        }
        with_ports = self.proto in ("TCP", "UDP")
        if with_ports:
            event["src_port"] = int(self.src_port)
        event["dest_ip"] = self.dest_ip
        if with_ports:
            event["dest_port"] = int(self.dest_port)
        event["proto"] = self.proto
        alert: dict[str, Any] = {
            "action": "allowed",
            "gid": 1,
            "signature_id": self.signature_id,
            "rev": 1,
            "signature": self.signature,
            "category": self.category,
            "severity": self.severity,
            "score": round(float(self.score), 6),
            "count": int(self.count),
            "model": self.model,
            "model_version": self.model_version,
            "window": int(self.window),
        }
        if self.window_start is not None:
            alert["window_start"] = iso_timestamp(self.window_start)
        if self.window_packets is not None:
            alert["window_packets"] = int(self.window_packets)
        if self.summary:
            alert["summary"] = True
            alert["first_seen"] = iso_timestamp(
                self.first_seen if self.first_seen is not None else self.timestamp
            )
            alert["last_seen"] = iso_timestamp(self.timestamp)
        alert.update(self.extra)
        event["alert"] = alert
        event["app_proto"] = "iomt-ids"
        if self.strict:
            return _strict(event)
        return event

    def to_json(self) -> str:
        """One compact JSON line (no trailing newline); never NaN or Infinity."""
        return json.dumps(self.to_eve(), separators=(",", ":"), allow_nan=False)


#: ``alert`` keys of Suricata's EVE schema (``etc/schema.json``: the object admits no others)
_SURICATA_ALERT_KEYS = (
    "action",
    "gid",
    "signature_id",
    "rev",
    "signature",
    "category",
    "severity",
    "metadata",
)


def _strict(event: dict[str, Any]) -> dict[str, Any]:
    """The event in Suricata's strict EVE shape: iomt-ids' own ``alert`` fields move into ``alert.metadata``.

    Suricata's schema admits no key of its own in ``alert`` beyond :data:`_SURICATA_ALERT_KEYS`, and
    ``alert.metadata`` is rule metadata, an object of string lists; so ``score``, ``count``, ``model``,
    ``window``, ``novelty``, ... become ``metadata["score"] = ["0.998"]`` and so on. Tools that read
    ``alert.count`` (folded lines) find it in ``alert.metadata.count`` instead.
    """
    alert = event["alert"]
    meta: dict[str, list[str]] = {k: [str(x) for x in v] for k, v in alert.get("metadata", {}).items()}
    for key, value in alert.items():
        if key in _SURICATA_ALERT_KEYS:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        meta.setdefault(key, [text])
    out = {k: v for k, v in alert.items() if k in _SURICATA_ALERT_KEYS and k != "metadata"}
    out["metadata"] = meta
    return {**event, "alert": out}


class StatsEvent:
    """A Suricata-EVE-shaped ``stats`` event: the run's counts and model-fit warnings so far.

    Written by the detection loop at the end of a run and when a warning is raised,
    to the sinks that take events (JSON-lines file, stdout)::

        {"timestamp": "...", "event_type": "stats", "stats": {"detect": {...}}, "app_proto": "iomt-ids"}
    """

    def __init__(self, timestamp: float, summary: Any) -> None:
        self.timestamp = float(timestamp)
        self.summary = summary

    def to_eve(self) -> dict[str, Any]:
        d = self.summary.to_dict()
        keys = ("packets", "accepted", "windows", "windows_by_size", "alerts_raw", "alerts_emitted",
                "alerts_suppressed", "categories", "dropped", "site_adapted", "novel_windows", "warnings")  # fmt: skip
        return {
            "timestamp": iso_timestamp(self.timestamp),
            "event_type": "stats",
            "stats": {"detect": {k: d[k] for k in keys}, "model_version": d["model_version"]},
            "app_proto": "iomt-ids",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_eve(), separators=(",", ":"), allow_nan=False)


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go: anything with ``emit``, ``flush`` and ``close``."""

    def emit(self, alert: Alert) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """Append alerts as JSON lines to a file (created with its folder if needed).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.jsonl`` file.
    append : bool, default True
        Append to an existing file; False truncates it first.
    """

    def __init__(self, path: str | os.PathLike[str], append: bool = True) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] | None = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"alerts file {self.path}: cannot open for writing ({exc.strerror}).") from None
        self._lock = threading.Lock()
        self.written = 0

    def emit(self, alert: Alert | StatsEvent) -> None:
        line = alert.to_json() + "\n"
        with self._lock:
            if self._fh is None:
                raise ConfigError(f"alerts file {self.path}: sink already closed.")
            self._fh.write(line)
            if isinstance(alert, Alert):
                self.written += 1

    def emit_event(self, event: StatsEvent) -> None:
        """Write a non-alert event line (``stats``)."""
        self.emit(event)

    def flush(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __repr__(self) -> str:
        return f"JsonLinesSink({str(self.path)!r})"


class StreamSink:
    """Write alerts as JSON lines to a text stream (``sys.stdout`` by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self.written = 0

    @property
    def stream(self) -> IO[str]:
        # resolved late so that a redirected sys.stdout (tests, CliRunner) is honoured
        return self._stream if self._stream is not None else sys.stdout

    def emit(self, alert: Alert) -> None:
        self.stream.write(alert.to_json() + "\n")
        self.written += 1

    def emit_event(self, event: StatsEvent) -> None:
        """Write a non-alert event line (``stats``)."""
        self.stream.write(event.to_json() + "\n")

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()


class CallableSink:
    """Hand each alert to a function, like skorch's ``sink=print``."""

    def __init__(self, fn: Callable[[Alert], Any]) -> None:
        self.fn = fn
        self.written = 0

    def emit(self, alert: Alert) -> None:
        self.fn(alert)
        self.written += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def as_sink(target: AlertSink | Callable[[Alert], Any] | str | os.PathLike[str]) -> AlertSink:
    """Turn a sink spec into a sink: a sink as is, ``"-"`` stdout, a path a JSON-lines file, a callable.

    >>> as_sink("-").__class__.__name__
    'StreamSink'
    """
    if isinstance(target, AlertSink):
        return target
    if isinstance(target, str) and target == "-":
        return StreamSink()
    if isinstance(target, str | os.PathLike):
        return JsonLinesSink(target)
    if callable(target):
        return CallableSink(target)
    raise ConfigError(
        f"sink: expected a path, '-', a callable or an object with emit/flush/close; got {type(target).__name__}."
    )
