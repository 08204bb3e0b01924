"""A plain dpkt loop computing v2 rows, one packet at a time (spec §4).

This is the straightforward implementation that CIC-style tools use: dpkt parses
each frame into objects and the window is aggregated with plain Python. It is
slow (tens of thousands of packets per second) and is kept only as an independent
reference for tests and for ``benchmarks/bench_extract.py``; use
:class:`~iomt_ids.features.windows.WindowExtractor` for real work.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator

import numpy as np

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.batch import SUPPORTED_LINKTYPES

__all__ = ["reference_v2_rows"]


def _unsupported(where: str, linktype: int) -> CaptureError:
    expected = ", ".join(f"{k} ({v})" for k, v in SUPPORTED_LINKTYPES.items())
    return CaptureError(f"{where}: unsupported link type {linktype}; expected one of {expected}.")


def _packets(path: str | os.PathLike[str], limit: int | None) -> Iterator[tuple[float, bytes, int]]:
    import dpkt

    with open(path, "rb") as fh:
        try:
            reader = dpkt.pcap.UniversalReader(fh)
        except (ValueError, dpkt.NeedData) as exc:
            raise CaptureError(f"{path}: dpkt cannot read it as a pcap or pcapng capture ({exc}).") from exc
        linktype = reader.datalink()
        if linktype not in SUPPORTED_LINKTYPES:
            raise _unsupported(str(path), linktype)
        for i, (ts, buf) in enumerate(reader):
            if limit is not None and i >= limit:
                return
            yield float(ts), buf, linktype


def _record(buf: bytes, linktype: int) -> tuple | None:
    import dpkt

    if linktype == 1:
        try:
            eth = dpkt.ethernet.Ethernet(buf)
        except Exception:
            return None
        etype, data, size = eth.type, eth.data, len(buf)
    elif linktype in (113, 276):
        sll = dpkt.sll.SLL(buf) if linktype == 113 else dpkt.sll2.SLL2(buf)
        etype, data, size = sll.ethtype, sll.data, len(sll.data) + 14
    else:
        raise _unsupported("reference_v2_rows", linktype)
    if etype == dpkt.ethernet.ETH_TYPE_ARP:
        if not isinstance(data, dpkt.arp.ARP):
            return None
        return (size, 0, 0, 0, 0, 0, 0, False, False, True)
    if etype != dpkt.ethernet.ETH_TYPE_IP or not isinstance(data, dpkt.ip.IP):
        return None
    ip = data
    l4 = ip.data
    tcp = isinstance(l4, dpkt.tcp.TCP)
    udp = isinstance(l4, dpkt.udp.UDP)
    hlen = 20 + len(l4.opts) if tcp else 8 if udp else 0
    flags = l4.flags if tcp else 0
    sport = l4.sport if tcp or udp else 0
    dport = l4.dport if tcp or udp else 0
    return (size, ip.p, ip.ttl, hlen, flags, sport, dport, tcp, udp, False)


def _row(win: list[tuple], iats: list[float], tss: list[float]) -> list[float]:
    n = len(win)
    sizes = [r[0] for r in win]
    protos = Counter(r[1] for r in win)
    top = max(protos.values())
    mode = min(p for p, c in protos.items() if c == top)

    def frac(pred) -> float:  # noqa: ANN001
        return sum(1 for r in win if pred(r)) / n

    def cnt(bit: int) -> int:
        return sum(1 for r in win if r[4] & bit)

    def port(r: tuple, p: int) -> bool:
        return r[5] == p or r[6] == p

    # the statistics as CIC computes them with pandas (per-window Series mean/std/var)
    arr = np.asarray(sizes, dtype=np.float64)
    mean = arr.sum() / n
    var = float(((arr - mean) ** 2).sum() / (n - 1)) if n > 1 else math.nan
    span = max(tss) - min(tss)
    return [
        sum(r[3] for r in win) / n,
        mode,
        sum(r[2] for r in win) / n,
        n / span if span else math.inf,
        *(cnt(b) / n for b in (0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80)),
        cnt(0x10),
        cnt(0x02),
        cnt(0x01),
        cnt(0x04),
        frac(lambda r: r[7] and port(r, 80)),
        frac(lambda r: r[7] and port(r, 443)),
        frac(lambda r: r[8] and port(r, 53)),
        frac(lambda r: r[7] and port(r, 23)),
        frac(lambda r: r[7] and port(r, 25)),
        frac(lambda r: r[7] and port(r, 22)),
        frac(lambda r: r[7] and port(r, 21)),
        frac(lambda r: r[7]),
        frac(lambda r: r[8]),
        frac(lambda r: r[8] and {r[5], r[6]} == {67, 68}),
        frac(lambda r: r[9]),
        frac(lambda r: not r[9] and r[1] == 1),
        frac(lambda r: not r[9] and r[1] == 2),
        frac(lambda r: not r[9]),
        frac(lambda r: not r[9]),
        sum(sizes),
        min(sizes),
        max(sizes),
        float(mean),
        math.sqrt(var),
        float(mean),
        float(np.asarray(iats).sum() / n),
        n,
        var,
    ]


def reference_v2_rows(path: str | os.PathLike[str], window: int = 10, limit: int | None = None) -> np.ndarray:
    """v2 rows of the first ``limit`` packets (all if None) of a pcap/pcapng, via dpkt.

    Returns an (n_windows, 39) float64 array in ``V2_COLUMNS`` order, the final
    partial window included.

    Raises
    ------
    CaptureError
        dpkt cannot read the file, or its link type is not one of ``SUPPORTED_LINKTYPES``.
    """
    rows: list[list[float]] = []
    win: list[tuple] = []
    iats: list[float] = []
    tss: list[float] = []
    prev: float | None = None
    for ts, buf, linktype in _packets(path, limit):
        rec = _record(buf, linktype)
        if rec is None:
            continue
        iats.append(0.0 if prev is None else ts - prev)
        prev = ts
        tss.append(ts)
        win.append(rec)
        if len(win) == window:
            rows.append(_row(win, iats, tss))
            win, iats, tss = [], [], []
    if win:
        rows.append(_row(win, iats, tss))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 39)
