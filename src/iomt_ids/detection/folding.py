"""Fold repeated alerts: one line per (source IP, class) per interval instead of thousands.

A flood makes every window alert. :class:`AlertFolder` writes the first alert of
a (``src_ip``, ``category``) pair at once, counts the repeats that follow within
``interval`` seconds, and when the interval closes writes one summary alert: the
first alert's flow, with ``count`` (all raw alerts of the interval, the first
included), ``first_seen``/``last_seen`` (timestamp = ``last_seen``, ``flow_id`` =
the last window) and the highest score. A pair that did not repeat writes no summary. The next
alert of the pair after the interval starts a new interval and is written at once.

An interval also ends early when its pair has been quiet for ``idle`` seconds: the next alert of
the pair starts a new episode and is written at once (the quiet episode's summary goes first).
So a second attack from the same source and of the same family, started a little after the first
ended, gets its own first line at once instead of hiding in the first one's summary.

State is bounded: at most ``max_keys`` open intervals, kept in an ``OrderedDict``
in opening order (like nfstream's ``NFCache``); the oldest is closed early, with
its summary, when a new pair would exceed the bound.

Time is injected: by default the folder runs on event time (the alerts'
timestamps, right for replaying a pcap); pass ``clock`` (e.g. ``time.time``) to
run on another clock, as a live capture does so that intervals close while the
link is idle.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from iomt_ids.detection.alerts import Alert
from iomt_ids.exceptions import ConfigError

__all__ = ["AlertFolder"]


@dataclass
class _Open:
    first: Alert
    count: int
    max_score: float
    last_ts: float
    last_window_id: int
    opened: float


class AlertFolder:
    """Fold alerts of the same (source IP, class) within an interval.

    Parameters
    ----------
    interval : float, default 60.0
        Seconds an interval stays open after its first alert. 0 turns folding off
        (every alert is written).
    max_keys : int, default 10000
        Most (source IP, class) pairs with an open interval.
    idle : float, default 0.0
        Close a pair's interval when its next alert comes more than ``idle`` seconds
        after its previous one (0: intervals last ``interval`` seconds, whatever happens).
    clock : callable or None, default None
        Returns "now" in epoch seconds. None: event time (each alert's
        ``timestamp``, and the ``now`` given to :meth:`expire`).

    Attributes
    ----------
    raw : int
        Alerts pushed.
    emitted : int
        Alerts returned for writing (first alerts and summaries).
    suppressed : int
        Raw alerts that were counted instead of written.
    evicted : int
        Intervals closed early because of ``max_keys``.

    Examples
    --------
    >>> from iomt_ids.detection.alerts import Alert
    >>> folder = AlertFolder(interval=60)
    >>> a = Alert(timestamp=0.0, window_id=0, window=10, category="RECON", score=0.9, src_ip="10.0.0.9")
    >>> len(folder.push(a)), len(folder.push(a)), len(folder.push(a))
    (1, 0, 0)
    >>> [s.count for s in folder.expire(61.0)]
    [3]
    """

    def __init__(
        self,
        interval: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] | None = None,
        idle: float = 0.0,
    ) -> None:
        if not interval >= 0:
            raise ConfigError(f"fold interval must be >= 0 seconds; got {interval!r} instead.")
        if not idle >= 0:
            raise ConfigError(f"fold idle must be >= 0 seconds; got {idle!r} instead.")
        self.idle = float(idle)
        if max_keys < 1:
            raise ConfigError(f"fold max_keys must be >= 1; got {max_keys!r} instead.")
        self.interval = float(interval)
        self.max_keys = int(max_keys)
        self.clock = clock
        self._open: OrderedDict[tuple[str, str], _Open] = OrderedDict()
        self.raw = 0
        self.emitted = 0
        self.suppressed = 0
        self.evicted = 0
        self._next_expiry = math.inf

    def __len__(self) -> int:
        """Open intervals."""
        return len(self._open)

    def _now(self, event_time: float) -> float:
        return self.clock() if self.clock is not None else event_time

    def push(self, alert: Alert) -> list[Alert]:
        """Add one raw alert; return the alerts to write now (possibly none)."""
        return self.offer(
            alert.src_ip, alert.category, alert.timestamp, alert.score, alert.window_id, lambda: alert
        )

    def offer(
        self,
        src_ip: str,
        category: str,
        timestamp: float,
        score: float,
        window_id: int,
        build: Callable[[], Alert],
    ) -> list[Alert]:
        """Like :meth:`push`, but the :class:`Alert` is built (``build()``) only if it is written.

        A flood makes thousands of raw alerts per second and nearly all are only
        counted, so the detection loop passes the fields and a builder.
        """
        self.raw += 1
        if self.interval == 0:
            self.emitted += 1
            return [build()]
        now = self.clock() if self.clock is not None else timestamp
        out = self.expire(now) if now >= self._next_expiry else []
        key = (src_ip, category)
        st = self._open.get(key)
        if st is not None and self.idle > 0 and timestamp - st.last_ts > self.idle:
            # a new episode of this pair: close the quiet one, then write this alert at once
            del self._open[key]
            out.extend(self._close(st))
            self._update_next_expiry()
            st = None
        if st is not None:
            st.count += 1
            st.last_ts = timestamp
            st.last_window_id = window_id
            if score > st.max_score:
                st.max_score = score
            self.suppressed += 1
            return out
        if len(self._open) >= self.max_keys:
            _, oldest = self._open.popitem(last=False)
            self.evicted += 1
            out.extend(self._close(oldest))
            self._update_next_expiry()
        alert = build()
        self._open[key] = _Open(alert, 1, score, timestamp, window_id, now)
        if len(self._open) == 1:
            self._next_expiry = now + self.interval
        out.append(alert)
        self.emitted += 1
        return out

    def _update_next_expiry(self) -> None:
        if self._open:
            self._next_expiry = next(iter(self._open.values())).opened + self.interval
        else:
            self._next_expiry = math.inf

    def expire(self, now: float | None = None) -> list[Alert]:
        """Close the intervals that are over at ``now``; return their summaries.

        ``now`` is event time; it is ignored when the folder has a ``clock``.
        With neither, nothing expires.
        """
        if self.clock is not None:
            now = self.clock()
        if now is None or not self._open:
            return []
        out: list[Alert] = []
        # opening order == expiry order (one fixed interval), so stop at the first open one
        while self._open:
            key, st = next(iter(self._open.items()))
            if now - st.opened < self.interval:
                break
            del self._open[key]
            out.extend(self._close(st))
        self._update_next_expiry()
        return out

    def flush(self) -> list[Alert]:
        """Close every open interval (end of input); return the summaries."""
        out: list[Alert] = []
        while self._open:
            _, st = self._open.popitem(last=False)
            out.extend(self._close(st))
        self._next_expiry = math.inf
        return out

    def _close(self, st: _Open) -> list[Alert]:
        if st.count <= 1:
            return []
        self.emitted += 1
        return [
            st.first.folded(
                count=st.count, last_seen=st.last_ts, last_window_id=st.last_window_id, score=st.max_score
            )
        ]
