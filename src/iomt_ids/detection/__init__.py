"""Streaming detection: packets -> windows -> model scores -> EVE-style alerts.

* :mod:`~iomt_ids.detection.detector`: :class:`Detector` (score), :func:`classify` (threshold).
* :mod:`~iomt_ids.detection.alerts`: :class:`Alert`, its EVE JSON line, sinks, severity map.
* :mod:`~iomt_ids.detection.outputs`: :func:`open_sink` (file, stdout, syslog, redis), :class:`QueuedSink`.
* :mod:`~iomt_ids.detection.folding`: :class:`AlertFolder`, one summary per (source, class) and interval.
* :mod:`~iomt_ids.detection.sources`: :class:`PcapSource`, :class:`LiveSource` (pcapy-ng).
* :mod:`~iomt_ids.detection.runner`: :func:`run_detection`, :class:`DetectConfig`, :class:`DetectSummary`.
"""

from __future__ import annotations

from iomt_ids.detection.alerts import (
    SEVERITY_BY_CATEGORY,
    Alert,
    AlertSink,
    CallableSink,
    JsonLinesSink,
    StreamSink,
    as_sink,
    severity_for,
)
from iomt_ids.detection.detector import Detector, Verdicts, classify
from iomt_ids.detection.folding import AlertFolder
from iomt_ids.detection.outputs import QueuedSink, RedisSink, SyslogSink, open_sink
from iomt_ids.detection.runner import (
    DEFAULT_WINDOWS,
    DetectConfig,
    DetectSummary,
    StopFlag,
    run_detection,
    stop_on_signals,
)
from iomt_ids.detection.sources import LiveSource, PcapSource, SourceStats

__all__ = [
    "DEFAULT_WINDOWS",
    "SEVERITY_BY_CATEGORY",
    "Alert",
    "AlertFolder",
    "AlertSink",
    "CallableSink",
    "DetectConfig",
    "DetectSummary",
    "Detector",
    "JsonLinesSink",
    "LiveSource",
    "PcapSource",
    "QueuedSink",
    "RedisSink",
    "SourceStats",
    "StopFlag",
    "StreamSink",
    "SyslogSink",
    "Verdicts",
    "as_sink",
    "classify",
    "open_sink",
    "run_detection",
    "severity_for",
    "stop_on_signals",
]
