"""Packet-count windows -> CICIoMT2024 feature rows (spec §3 for v2, §5 for v1).

:class:`WindowExtractor` takes packets in batches of any size and returns the
windows they complete. Its state is the partial window (fewer than W records),
the previous timestamp (for IAT) and, for v1, the legacy per-flow state, so
memory stays bounded on endless input. Feeding the same packets in one batch or
in many gives the same rows, bit for bit.

Windows are consecutive groups of W accepted packets (Ethernet IPv4 and ARP) in
arrival order, over all hosts; the stream's first packet has IAT 0. Raw
``inf`` (Rate of a window spanning no time) and ``NaN`` (Std and Variance of a
one-packet window) are kept: cleaning them is the model bundle's job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iomt_ids.exceptions import BadValueError, ConfigError
from iomt_ids.features.dissect import (
    DPORT,
    DST,
    FLAGS,
    HLEN,
    KIND,
    KIND_ARP,
    KIND_ICMP,
    KIND_IPV4,
    KIND_TCP,
    KIND_UDP,
    PROTO,
    SPORT,
    SRC,
    TTL,
    L,
    PacketRecords,
    dissect,
)
from iomt_ids.features.packets import CaptureStats, Frames, PacketBatch
from iomt_ids.features.schema import columns_for
from iomt_ids.features.v1 import V1State, v1_window_means

__all__ = ["META_COLUMNS", "WindowBatch", "WindowExtractor", "v2_window_rows"]

logger = logging.getLogger(__name__)

META_COLUMNS: tuple[str, ...] = (
    "window_id",
    "start_ts",
    "end_ts",
    "n_packets",
    "src_ip",
    "dest_ip",
    "src_port",
    "dest_port",
    "proto",
    "n_sources",
)
_PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP"}
#: tcpdump -C 10 (spec §2.1): a new chunk starts once the current file exceeds this.
CIC_CHUNK_BYTES = 10_000_000


@dataclass
class WindowBatch:
    """Windows completed by one call, as two aligned frames.

    Attributes
    ----------
    features : pandas.DataFrame
        The release's columns, in order, float64, raw values (inf/NaN kept).
    meta : pandas.DataFrame
        ``window_id`` (running int), ``start_ts``/``end_ts`` (float64 epoch),
        ``n_packets``, ``n_sources`` (hosts sending a substantial share of the traffic to the
        window's target, see ``_sources_to_target``), and the window's initiator flow: ``src_ip``, ``dest_ip``
        (dotted quad; ARP sender/target), ``src_port``, ``dest_port`` (0 if
        none), ``proto`` ("TCP", "UDP", "ICMP", "IGMP", "ARP" or the number).

        The dominant flow names the window's initiator (the attacker of a scan
        or flood), not merely its busiest flow, which is often the target's
        replies. A packet is a response if it is a TCP SYN+ACK or RST, an ICMP
        reply or error, or a TCP/UDP packet from a service port (< 1024, 1883,
        8883, 5683) to a non-service port; a response counts for its
        destination, seen from that side (addresses and ports swapped), any
        other packet for its source. Scores: 8 for a TCP SYN without ACK, 4 for
        an ICMP request (echo, timestamp, information, address mask), 1 for a
        response, 2 for any other packet. ``src_ip`` is the initiator with the
        highest total score (ties: most packets, then seen first); ``dest_ip``
        its main peer and the ports and protocol its main flow with that peer,
        both ranked by the initiator's own packets (responses excluded), then
        by all its packets, then seen first.
    """

    features: pd.DataFrame
    meta: pd.DataFrame

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def empty(cls, release: str = "v2") -> WindowBatch:
        """A batch with no rows and the right columns."""
        proto = _EMPTY.get(release)
        if proto is None:
            features = pd.DataFrame(
                np.empty((0, len(columns_for(release)))), columns=list(columns_for(release))
            )
            proto = _EMPTY[release] = cls(features, _empty_meta())
        # shallow copies: cheap (feed() returns many empty batches) and safe to modify
        return cls(proto.features.copy(deep=False), proto.meta.copy(deep=False))

    @staticmethod
    def concat(batches: Sequence[WindowBatch], release: str | None = None) -> WindowBatch:
        """Stack batches in order (an empty list gives an empty ``release`` batch)."""
        if len(batches) == 1:
            return batches[0]
        batches = [b for b in batches if len(b)]
        if not batches:
            return WindowBatch.empty(release or "v2")
        if len(batches) == 1:
            return batches[0]
        return WindowBatch(
            pd.concat([b.features for b in batches], ignore_index=True),
            pd.concat([b.meta for b in batches], ignore_index=True),
        )


_EMPTY: dict[str, WindowBatch] = {}


def _empty_meta() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "window_id": np.empty(0, np.int64),
            "start_ts": np.empty(0),
            "end_ts": np.empty(0),
            "n_packets": np.empty(0, np.int64),
            "src_ip": np.empty(0, object),
            "dest_ip": np.empty(0, object),
            "src_port": np.empty(0, np.int64),
            "dest_port": np.empty(0, np.int64),
            "proto": np.empty(0, object),
            "n_sources": np.empty(0, np.int64),
        }
    )


def _run_counts(sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted along axis 1: start index of each element's run, and run length so far."""
    k, n = sorted_rows.shape
    j = np.broadcast_to(np.arange(n), (k, n))
    is_start = np.ones((k, n), dtype=bool)
    is_start[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    start = np.maximum.accumulate(np.where(is_start, j, 0), axis=1)
    return start, j - start + 1


def v2_window_rows(rec: PacketRecords, iat: np.ndarray, n: int) -> np.ndarray:
    """Aggregate ``len(rec) // n`` consecutive windows of ``n`` records into v2 rows.

    Parameters
    ----------
    rec : PacketRecords
        Exactly k·n records.
    iat : numpy.ndarray
        Per-record inter-arrival times (same length).
    n : int
        Window size.

    Returns
    -------
    numpy.ndarray
        (k, 39) float64 in ``V2_COLUMNS`` order.
    """
    k = len(rec) // n
    ints = rec.ints
    kind = ints[KIND]
    tcp = (kind & KIND_TCP) != 0
    udp = (kind & KIND_UDP) != 0
    ipv = (kind & KIND_IPV4) != 0
    proto = ints[PROTO]
    sp = ints[SPORT]
    dp = ints[DPORT]
    # small per-packet values whose window sums make most columns: one reduction for all
    per = np.empty((len(rec), 23), dtype=np.uint8)
    per[:, 0] = ints[HLEN]  # <= 60
    per[:, 1] = ints[TTL]  # <= 255
    per[:, 2:9] = (ints[FLAGS, :, None] & _FLAG_BITS) != 0
    hit = (sp[:, None] == _TCP_PORTS) | (dp[:, None] == _TCP_PORTS)
    per[:, 9:15] = hit & tcp[:, None]
    per[:, 15] = udp & ((sp == 53) | (dp == 53))
    per[:, 16] = tcp
    per[:, 17] = udp
    per[:, 18] = udp & (((sp == 67) & (dp == 68)) | ((sp == 68) & (dp == 67)))
    per[:, 19] = (kind & KIND_ARP) != 0
    per[:, 20] = ipv & (proto == 1)
    per[:, 21] = ipv & (proto == 2)
    per[:, 22] = ipv
    sums = per.reshape(k, n, -1).sum(axis=1, dtype=np.int64)
    out = np.empty((k, 39), dtype=np.float64)
    out[:, _SUM_TARGETS] = sums / n
    # counts: ACK, SYN, FIN, RST (columns 6, 3, 2, 4 of the flag block)
    out[:, 11] = sums[:, 6]
    out[:, 12] = sums[:, 3]
    out[:, 13] = sums[:, 2]
    out[:, 14] = sums[:, 4]
    out[:, 29] = out[:, 28]  # LLC == IPv (spec §2.3)
    srt = np.sort(proto.reshape(k, n), axis=1)
    _, run = _run_counts(srt)
    out[:, 1] = srt[np.arange(k), np.argmax(run, axis=1)]  # mode; ties -> smallest
    ts = rec.ts.reshape(k, n)
    span = ts.max(axis=1) - ts.min(axis=1)
    with np.errstate(divide="ignore"):
        out[:, 3] = n / span
    size = ints[L].reshape(k, n)
    tot = size.sum(axis=1)
    mean = tot / n
    out[:, 30] = tot
    out[:, 31] = size.min(axis=1)
    out[:, 32] = size.max(axis=1)
    out[:, 33] = mean
    # sample variance as pandas computes it: mean first, then the squared deviations
    if n > 1:
        var = ((size - mean[:, None]) ** 2).sum(axis=1) / (n - 1)
    else:
        var = np.full(k, np.nan)
    out[:, 34] = np.sqrt(var)
    out[:, 35] = mean
    # contiguous rows: numpy sums each row pairwise, as pandas' mean of one column does
    out[:, 36] = np.ascontiguousarray(iat.reshape(k, n)).sum(axis=1) / n
    out[:, 37] = n
    out[:, 38] = var
    return out


_FLAG_BITS = np.array([0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80])  # FIN SYN RST PSH ACK ECE CWR
_TCP_PORTS = np.array([80, 443, 23, 25, 22, 21])  # HTTP HTTPS Telnet SMTP SSH IRC(sic)
# V2 column index of each per-packet sum
_SUM_TARGETS = [0, 2, 4, 5, 6, 7, 8, 9, 10, 15, 16, 18, 19, 20, 21, 17, 22, 23, 24, 25, 26, 27, 28]


class _IpNames:
    """Bounded cache of dotted-quad strings."""

    def __init__(self, limit: int = 65536) -> None:
        self._cache: dict[int, str] = {}
        self._limit = limit

    def __call__(self, values: np.ndarray) -> list[str]:
        cache = self._cache
        if len(cache) > self._limit:
            cache.clear()
        out = []
        for v in values.tolist():
            s = cache.get(v)
            if s is None:
                s = cache[v] = f"{v >> 24 & 255}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}"
            out.append(s)
        return out


class WindowExtractor:
    """Turn packets into CICIoMT2024 window feature rows, incrementally.

    Parameters
    ----------
    window : int, default 10
        Packets per window (W). The dataset used 10, and 100 for the TCP/IP
        DoS/DDoS captures; any W >= 1 works.
    release : {"v2", "v1"}, default "v2"
        Feature set. v2 (39 columns) is the deployment target; v1 (45 columns)
        replicates the legacy per-packet state records averaged over W.
    chunk_bytes : int or None, default None
        Replicate CIC's ``tcpdump -C`` chunking: all state (partial window, IAT
        reference, v1 flow tables) is reset, and the partial window emitted,
        whenever the pcap written so far exceeds ``chunk_bytes`` (use
        :data:`CIC_CHUNK_BYTES` = 10,000,000 to match the published CSVs). Off by
        default, as recommended for live use.
    meta : bool, default True
        Compute :attr:`WindowBatch.meta` (the dominant flow of each window).
        Turn off to save time when only features are needed.

    Attributes
    ----------
    stats : CaptureStats
        Frames fed (``packets_read``), accepted, and skipped by reason.
    windows_emitted : int

    Examples
    --------
    >>> ex = WindowExtractor(window=10)
    >>> batch = ex.feed(ts, frames)  # doctest: +SKIP
    >>> tail = ex.flush()  # doctest: +SKIP
    """

    def __init__(
        self, window: int = 10, release: str = "v2", *, chunk_bytes: int | None = None, meta: bool = True
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise ConfigError(f"window must be an integer >= 1; got {window!r} instead.")
        if release not in ("v1", "v2"):
            raise ConfigError(f"release must be 'v1' or 'v2'; got {release!r} instead.")
        if chunk_bytes is not None and chunk_bytes < 1:
            raise ConfigError(f"chunk_bytes must be a positive number of bytes or None; got {chunk_bytes!r}.")
        self.window = int(window)
        self.release = release
        self.columns = columns_for(release)
        self.chunk_bytes = chunk_bytes
        self.meta = meta
        self.stats = CaptureStats()
        self.windows_emitted = 0
        self._ips = _IpNames()
        self.reset()

    def reset(self) -> None:
        """Forget the partial window and the stream state (not the stats)."""
        self._carry = PacketRecords.empty()
        self._carry_vals = np.empty(0) if self.release == "v2" else np.empty((0, len(self.columns)))
        self._prev_ts: float | None = None
        self._chunk_size = 24
        self._v1 = V1State() if self.release == "v1" else None

    # -- public API ---------------------------------------------------------------------
    def feed(
        self, ts: np.ndarray | Sequence[float], frames: Sequence[bytes], linktype: int = 1
    ) -> WindowBatch:
        """Add packets; return the windows they complete (possibly none).

        Parameters
        ----------
        ts : array-like of float
            Epoch seconds, one per frame.
        frames : Sequence[bytes]
            Raw frames; a :class:`~iomt_ids.features.packets.Frames` view is used
            without copying.
        linktype : int, default 1
            pcap link type of the frames (1 Ethernet, 113 SLL, 276 SLL2).

        Returns
        -------
        WindowBatch
        """
        ts_arr = np.asarray(ts, dtype=np.float64).reshape(-1)
        fr = frames if isinstance(frames, Frames) else Frames.from_list(frames)
        if len(ts_arr) != len(fr):
            raise BadValueError(
                f"feed: got {len(ts_arr)} timestamps for {len(fr)} frames; expected one per frame."
            )
        self.stats.packets_read += len(fr)
        if not len(fr):
            return WindowBatch.empty(self.release)
        parts: list[WindowBatch] = []
        if self.chunk_bytes is None:
            parts.append(self._consume(ts_arr, fr, linktype))
        else:
            sizes = np.asarray(fr.lengths, dtype=np.int64) + 16
            start, limit = 0, self.chunk_bytes
            while start < len(fr):
                seg = sizes[start:]
                # tcpdump -C: before writing a packet, start a new file if this one exceeds the limit
                before = self._chunk_size + np.cumsum(seg) - seg
                over = np.flatnonzero(before > limit)
                if len(over) and over[0] == 0:
                    parts.append(self.flush())
                    self.reset()
                    before = self._chunk_size + np.cumsum(seg) - seg
                    over = np.flatnonzero(before[1:] > limit) + 1  # a new file takes at least one packet
                stop = start + (int(over[0]) if len(over) else len(seg))
                parts.append(self._consume(ts_arr[start:stop], fr[start:stop], linktype))
                self._chunk_size = int(before[stop - start - 1] + seg[stop - start - 1])
                start = stop
        return WindowBatch.concat(parts, self.release)

    def feed_batch(self, batch: PacketBatch) -> WindowBatch:
        """Shorthand for ``feed(batch.ts, batch.frames, batch.linktype)``."""
        return self.feed(batch.ts, batch.frames, batch.linktype)

    def flush(self) -> WindowBatch:
        """Emit the partial window (if any) and empty it; the IAT reference is kept."""
        n = len(self._carry)
        if n == 0:
            return WindowBatch.empty(self.release)
        rec = self._carry
        vals = self._carry_vals
        self._carry = PacketRecords.empty()
        self._carry_vals = vals[:0]
        return self._rows(rec, vals, n)

    # -- internals ----------------------------------------------------------------------
    def _consume(self, ts: np.ndarray, frames: Frames, linktype: int) -> WindowBatch:
        rec, skipped = dissect(ts, frames, linktype)
        for reason, c in skipped.items():
            self.stats.skip(reason, c)
        m = len(rec)
        self.stats.packets_accepted += m
        if m == 0:
            return WindowBatch.empty(self.release)
        if self.release == "v2":
            vals = np.empty(m)
            vals[0] = 0.0 if self._prev_ts is None else rec.ts[0] - self._prev_ts
            np.subtract(rec.ts[1:], rec.ts[:-1], out=vals[1:])
        else:
            assert self._v1 is not None
            vals = self._v1.records(rec)
        self._prev_ts = float(rec.ts[-1])
        allrec = PacketRecords.concat([self._carry, rec])
        allvals = np.concatenate([self._carry_vals, vals]) if len(self._carry_vals) else vals
        w = self.window
        full = (len(allrec) // w) * w
        # copy the remainder so the carried state does not pin the batch buffers
        self._carry = PacketRecords(allrec.ts[full:].copy(), allrec.ints[:, full:].copy())
        self._carry_vals = allvals[full:].copy()
        if full == 0:
            return WindowBatch.empty(self.release)
        return self._rows(allrec[:full], allvals[:full], w)

    def _rows(self, rec: PacketRecords, vals: np.ndarray, n: int) -> WindowBatch:
        if self.release == "v2":
            values = v2_window_rows(rec, vals, n)
        else:
            values = v1_window_means(vals, n)
        k = len(values)
        features = pd.DataFrame(values, columns=list(self.columns), copy=False)
        ids = np.arange(self.windows_emitted, self.windows_emitted + k, dtype=np.int64)
        self.windows_emitted += k
        return WindowBatch(features, self._meta(rec, n, ids))

    def _meta(self, rec: PacketRecords, n: int, ids: np.ndarray) -> pd.DataFrame:
        k = len(rec) // n
        ints = rec.ints.reshape(-1, k, n)
        ts = rec.ts.reshape(k, n)
        base = {
            "window_id": ids,
            "start_ts": ts[:, 0].copy(),
            "end_ts": ts[:, -1].copy(),
            "n_packets": np.full(k, n, dtype=np.int64),
        }
        if not self.meta:
            return pd.DataFrame(
                {
                    **base,
                    "src_ip": [""] * k,
                    "dest_ip": [""] * k,
                    "src_port": np.zeros(k, np.int64),
                    "dest_port": np.zeros(k, np.int64),
                    "proto": [""] * k,
                    "n_sources": np.zeros(k, np.int64),
                }
            )
        src, dst, sport, dport, pick = _initiator_flows(rec.ints, n)
        rows = np.arange(k)
        is_arp = (ints[KIND, rows, pick] & KIND_ARP) != 0
        proto = [
            "ARP" if a else _PROTO_NAMES.get(p, str(p))
            for a, p in zip(is_arp.tolist(), ints[PROTO, rows, pick].tolist(), strict=True)
        ]
        return pd.DataFrame(
            {
                **base,
                "src_ip": self._ips(src),
                "dest_ip": self._ips(dst),
                "src_port": sport,
                "dest_port": dport,
                "proto": proto,
                "n_sources": _sources_to_target(rec.ints, n, dst, ints[PROTO, rows, pick]),
            }
        )


def _sources_to_target(ints: np.ndarray, n: int, target: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """Per window, how many hosts send a substantial share of the traffic to its target.

    Counted: the sources of the window's packets to ``target`` with protocol
    ``proto`` that are not responses, each with at least ``max(2, top / 4)``
    such packets (``top``: the busiest source's count), so a device's single
    telemetry message to a flooded broker does not count. One source is a DoS,
    several are a DDoS (the datasets' definition).
    """
    k = ints.shape[1] // n
    _, response = _roles(ints)
    src = ints[SRC].reshape(k, n)
    m = (ints[DST].reshape(k, n) == target[:, None]) & (ints[PROTO].reshape(k, n) == proto[:, None])
    m &= ~response.reshape(k, n)
    rows = np.broadcast_to(np.arange(k)[:, None], (k, n))[m]
    if not len(rows):
        return np.zeros(k, np.int64)
    keys, counts = np.unique((rows.astype(np.int64) << 32) | src[m], return_counts=True)
    krow = keys >> 32
    top = np.zeros(k, np.int64)
    np.maximum.at(top, krow, counts)
    need = np.maximum(2, top[krow] / 4.0)
    return np.bincount(krow[counts >= need], minlength=k).astype(np.int64)


# -- attribution of a window to its initiator (WindowBatch.meta) ------------------------
_SCORE_SYN, _SCORE_REQUEST, _SCORE_OTHER, _SCORE_RESPONSE, _SCORE_BARE_ACK = 8, 4, 2, 1, 0
#: frame length minus TCP header length of a bare ACK: Ethernet 14 + IPv4 20 + up to 6 bytes of padding
_BARE_ACK_MAX = 40
#: TCP/UDP service ports: a packet from one of them to a port not among them is a response.
_SERVICE_PORT = np.zeros(65536, dtype=bool)
_SERVICE_PORT[:1024] = True
_SERVICE_PORT[[1883, 8883, 5683]] = True
#: ICMP role by type: 1 request (echo, timestamp, information, address mask), -1 reply
#: to one of them or error (unreachable, source quench, redirect, time exceeded,
#: parameter problem), 0 other.
_ICMP_ROLE = np.zeros(256, dtype=np.int8)
_ICMP_ROLE[[8, 13, 15, 17]] = 1
_ICMP_ROLE[[0, 14, 16, 18, 3, 4, 5, 11, 12]] = -1


def _roles(ints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-packet initiator score and response flag (see :class:`WindowBatch`).

    Parameters
    ----------
    ints : numpy.ndarray
        ``PacketRecords.ints``, or any reshaping of it with the fields first.

    Returns
    -------
    score : numpy.ndarray
        int64, the shape of one field: what the packet adds to its initiator's score.
    response : numpy.ndarray
        bool: the packet answers its destination, which is therefore its initiator.
    """
    kind, flags = ints[KIND], ints[FLAGS]
    tcp = (kind & KIND_TCP) != 0
    sp = ints[SPORT]  # 0..65535 (ICMP: the type)
    response = ((kind & (KIND_TCP | KIND_UDP)) != 0) & _SERVICE_PORT[sp] & ~_SERVICE_PORT[ints[DPORT]]
    response |= tcp & (((flags & 0x12) == 0x12) | ((flags & 0x04) != 0))  # SYN+ACK, RST
    syn = tcp & ((flags & 0x12) == 0x02)  # SYN without ACK: always an initiator
    response &= ~syn
    icmp = (kind & KIND_ICMP) != 0
    request = None
    if icmp.any():
        role = _ICMP_ROLE[sp & 255]
        response |= icmp & (role < 0)
        request = icmp & (role > 0)
    score = np.where(response, _SCORE_RESPONSE, _SCORE_OTHER)
    if request is not None:
        score[request] = _SCORE_REQUEST
    # a bare TCP ACK (no data: at most Ethernet padding past the headers) shows no initiative: a
    # subscriber acknowledging the broker's forwarded flood must not outscore the flooder
    bare_ack = tcp & ((flags & 0x3F) == 0x10) & (ints[L] - ints[HLEN] <= _BARE_ACK_MAX)
    score[bare_ack] = _SCORE_BARE_ACK
    score[syn] = _SCORE_SYN
    return score, response


def _row_best(primary: np.ndarray, first: np.ndarray, row_runs: np.ndarray, n: int) -> np.ndarray:
    """Per window, the run with the highest ``primary``, ties to the lowest ``first``.

    Parameters
    ----------
    primary : numpy.ndarray
        (R,) int64 rank of each run, the runs of each window consecutive.
    first : numpy.ndarray
        (R,) its first packet's position in the window (unique within a window).
    row_runs : numpy.ndarray
        (k,) index of each window's first run.
    n : int
        Window size.

    Returns
    -------
    numpy.ndarray
        (k,) index of the chosen run of each window.
    """
    per_row = np.diff(np.append(row_runs, len(primary)))
    top = np.repeat(np.maximum.reduceat(primary, row_runs), per_row)
    first = np.where(primary == top, first, n)
    return np.flatnonzero(first == np.repeat(np.minimum.reduceat(first, row_runs), per_row))


def _runs(brk: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the runs that ``brk`` (True at each run's first element) marks."""
    start = np.flatnonzero(brk)
    return start, np.append(start[1:], n_total)


def _run_totals(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each run."""
    cum = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=cum[1:])
    return cum[end] - cum[start]


def _initiator_flows(ints: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """The initiator of each window of ``n`` packets and its main flow, as the initiator sees it.

    A response counts for its destination, seen from that side: its addresses
    and ports are swapped. Peers and flows rank by the initiator's own packets
    (not responses) first, so that a flood's few ICMP errors, which all share
    one flow, do not outrank its datagrams with random ports.

    Each window is sorted once by (initiator, position) and once by (peer,
    flow hash, position), as values (``np.sort`` of packed integers is much
    faster than ``argsort``); the runs of equal keys are then ranked with flat
    cumulative sums and ``reduceat``. Flows are told apart by a hash of
    ``32 - ceil(log2 n)`` bits (25 bits for n = 100): two flows of the same
    peer that collide count as one, which can only change which of the
    initiator's flows is reported.

    Parameters
    ----------
    ints : numpy.ndarray
        ``PacketRecords.ints`` of k·n packets.
    n : int
        Window size.

    Returns
    -------
    src, dst, sport, dport : numpy.ndarray
        (k,) int64: the initiator, its main peer, and the ports of its main flow
        with that peer (0 for packets without ports).
    pick : numpy.ndarray
        (k,) int64 index in the window of the first packet of that flow.
    """
    total = ints.shape[1]
    k = total // n
    pbits = max((n - 1).bit_length(), 1)  # a position in the window
    hbits = 32 - pbits  # the flow hash
    pmask = np.uint64((1 << pbits) - 1)
    at_row = np.arange(0, total, n)
    base = np.repeat(at_row, n)  # flat index of each packet's window
    pos = np.tile(np.arange(n, dtype=np.uint64), k)
    row_start = np.zeros(total, dtype=bool)
    row_start[at_row] = True
    score, response = _roles(ints)
    src, dst = ints[SRC], ints[DST]  # IPv4 addresses: non-negative, so viewed as uint64 unchanged
    actor = np.where(response, dst, src)

    # 1. initiator: highest total score, then most packets, then seen first
    key = (actor.view(np.uint64) << np.uint64(32)) | pos
    key = np.sort(key.reshape(k, n), axis=1).reshape(-1)
    where = (key & pmask).view(np.int64)  # position in the window
    key >>= np.uint64(32)  # initiator
    brk = row_start.copy()
    brk[1:] |= key[1:] != key[:-1]
    start, end = _runs(brk, total)
    score = _run_totals(score.take(where + base), start, end)
    best = _row_best(score * (n + 1) + (end - start), where[start], np.flatnonzero(start % n == 0), n)
    mine = actor == np.repeat(key[start[best]].view(np.int64), n)

    # 2. its peer, then its flow with that peer: sort by (peer, flow hash, position), other packets last
    peer = np.where(response, src, dst)
    kind = ints[KIND]
    sp = np.where(response, ints[DPORT], ints[SPORT])  # ICMP: type and code, zeroed in the result
    dp = np.where(response, ints[SPORT], ints[DPORT])
    flow = ((sp << 25) | (dp << 9) | ints[PROTO] | ((kind & KIND_ARP) << 8)).view(np.uint64)
    with np.errstate(over="ignore"):
        fhash = (flow * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - hbits)
    np.minimum(fhash, np.uint64((1 << hbits) - 2), out=fhash)  # all ones marks the other packets
    fhash <<= np.uint64(pbits)  # (flow hash, position): the low 32 bits of the key
    fhash |= pos
    other = np.uint64(((1 << 32) - 1 << 32) | ((1 << hbits) - 1 << pbits))
    key = np.where(mine, (peer.view(np.uint64) << np.uint64(32)) | fhash, other | pos)
    key = np.sort(key.reshape(k, n), axis=1).reshape(-1)
    where = (key & pmask).view(np.int64)
    flat = where + base
    own = mine.take(flat) & ~response.take(flat)
    key >>= np.uint64(pbits)  # (peer, flow hash)
    brk = row_start.copy()
    brk[1:] |= key[1:] != key[:-1]
    start, end = _runs(brk, total)  # flows
    f_count, f_own, f_first = end - start, _run_totals(own, start, end), where[start]
    f_valid = mine.take(flat[start])
    f_peer = key[start] >> np.uint64(hbits)
    # peers: consecutive flows with the same peer (and validity)
    brk = start % n == 0
    brk[1:] |= (f_peer[1:] != f_peer[:-1]) | (f_valid[1:] != f_valid[:-1])
    p_start, p_end = _runs(brk, len(start))
    p_rank = _run_totals(f_own, p_start, p_end) * (n + 1) + _run_totals(f_count, p_start, p_end)
    p_rank = np.where(f_valid[p_start], p_rank, -1)
    best = _row_best(
        p_rank, np.minimum.reduceat(f_first, p_start), np.flatnonzero(start[p_start] % n == 0), n
    )
    chosen = np.zeros(len(p_start), dtype=bool)
    chosen[best] = True
    f_rank = np.where(chosen[np.cumsum(brk) - 1], f_own * (n + 1) + f_count, -1)
    best = _row_best(f_rank, f_first, np.flatnonzero(start % n == 0), n)
    at = at_row + f_first[best]
    ports = (kind.take(at) & (KIND_TCP | KIND_UDP)) != 0
    return (
        actor.take(at),
        peer.take(at),
        np.where(ports, sp.take(at), 0),
        np.where(ports, dp.take(at), 0),
        f_first[best],
    )
