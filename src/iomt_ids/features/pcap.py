"""Classic pcap: the 24-byte file header, then records of a 16-byte header and a frame.

Both byte orders, with the microsecond (``a1b2c3d4``) or nanosecond (``a1b23c4d``)
magic. One link type per file, known from the header. Timestamps are computed the
way dpkt does (``sec + frac / 1e6``, or ``/ 1e9`` for nanosecond files).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.batch import (
    MAX_RECORD,
    SUPPORTED_LINKTYPES,
    CaptureStats,
    PacketBatch,
    frames_batch,
    unsupported_linktype,
)
from iomt_ids.features.capfile import CaptureFile

__all__ = ["PCAP_MAGICS", "iter_pcap", "read_pcap_header"]

#: magic -> (struct byte order, timestamp fraction divisor)
PCAP_MAGICS: dict[bytes, tuple[str, float]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_HEADER = 24


def read_pcap_header(file: CaptureFile) -> tuple[str, float, int]:
    """Read the rest of the file header whose magic is ``file.head``.

    Returns
    -------
    (endian, divisor, linktype)
        The struct byte order, the timestamp fraction divisor and the link type.

    Raises
    ------
    CaptureError
        The header is cut short, or the link type is not supported.
    """
    endian, divisor = PCAP_MAGICS[file.head]
    rest = file.read(_HEADER - 4)
    if len(rest) < _HEADER - 4:
        raise CaptureError(f"{file.path}: truncated pcap file header ({4 + len(rest)} of 24 bytes).")
    _vmaj, _vmin, _zone, _sigfigs, _snaplen, linktype_field = struct.unpack(endian + "HHiIII", rest)
    linktype = linktype_field & 0xFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise unsupported_linktype(file.path, linktype)
    file.stats.bytes_read = _HEADER
    return endian, divisor, linktype


def iter_pcap(
    file: CaptureFile, endian: str, divisor: float, linktype: int, batch_size: int
) -> Iterator[PacketBatch]:
    """Batches of at most ``batch_size`` records, after :func:`read_pcap_header`.

    A record cut short by the end of the file, or a header claiming more than
    :data:`~iomt_ids.features.batch.MAX_RECORD` bytes, ends the reading; it is noted
    in ``file.stats``.
    """
    incl_of = struct.Struct(endian + "I").unpack_from
    hdr_dtype = np.dtype(endian + "u4")
    stats = file.stats
    file_pos = _HEADER  # file offset of buf[0]
    leftover = b""
    while True:
        arr, end, eof = file.fill(leftover)
        buf = memoryview(arr)
        o, off = _walk_pcap(buf, arr, end, incl_of, hdr_dtype)
        # records claiming absurd lengths mean the file is corrupt from there on
        incl = np.diff(o, append=off) - 16
        bad_at = np.flatnonzero(incl > MAX_RECORD)
        corrupt = ""
        if len(bad_at):
            off = int(o[bad_at[0]])
            corrupt = f"record header claims {int(incl[bad_at[0]]):,} captured bytes"
            o = o[: bad_at[0]]
        elif off + 16 <= end and (claim := incl_of(buf, off + 8)[0]) > MAX_RECORD:
            corrupt = f"record header claims {claim:,} captured bytes"
        for i in range(0, len(o), batch_size):
            yield _pcap_batch(arr, o[i : i + batch_size], hdr_dtype, divisor, linktype, stats)
            nxt = i + batch_size
            stats.bytes_read = file_pos + (int(o[nxt]) if nxt < len(o) else off)
        if corrupt:
            file.corrupt(file_pos + off, corrupt)
            return
        leftover = arr[off:end].tobytes()
        del buf, arr  # let the chunk go before the next one is allocated
        file_pos += off
        stats.bytes_read = file_pos
        if eof:
            if leftover:
                file.truncated(file_pos, len(leftover))
            return


def _pcap_batch(
    arr: np.ndarray, o: np.ndarray, hdr_dtype: np.dtype, divisor: float, linktype: int, stats: CaptureStats
) -> PacketBatch:
    """The batch of the records at offsets ``o`` of the chunk ``arr``."""
    hdr = sliding_window_view(arr, 12)[o].view(hdr_dtype)  # (n, 3): sec, frac, incl
    ts = hdr[:, 0].astype(np.float64)
    ts += hdr[:, 1] / divisor  # dpkt: tv_sec + tv_usec / 1e6
    caplen = hdr[:, 2].astype(np.int64)
    stats.packets_read += len(o)
    return frames_batch(arr, ts, o + 16, caplen, linktype)


def _walk_pcap(
    buf: memoryview, arr: np.ndarray, end: int, incl_of: Any, u4: np.dtype
) -> tuple[np.ndarray, int]:
    """Offsets of the complete records in ``buf[:end]`` and where the walk stopped.

    The only per-packet Python work of the reader. ``buf`` has zero padding after
    ``end``, so reading a header that runs past ``end`` gives a record that does not
    fit, which ends the walk.

    Floods are runs of equal-length records. After a few equal lengths in a row the
    walk guesses that the next records have the same length, reads all their length
    fields at once with NumPy and keeps the guesses up to the first that differs: if
    record i has length c, record i + 1 starts 16 + c bytes later, so every kept
    offset is exact. The guess size adapts, so mixed traffic pays almost nothing.
    """
    parts: list[np.ndarray] = []
    offs: list[int] = []
    append = offs.append
    lengths = sliding_window_view(arr, 4)
    off = 0
    last, same, need, span = -1, 0, 4, 64
    while True:
        incl = incl_of(buf, off + 8)[0]
        nxt = off + 16 + incl
        if nxt > end:
            break
        append(off)
        off = nxt
        if incl != last:
            last, same = incl, 0
            continue
        same += 1
        if same < need:
            continue
        step = 16 + incl
        k = min((end - off) // step, span)
        if k <= 0:
            continue
        cand = off + step * np.arange(k, dtype=np.int64)
        miss = np.flatnonzero(lengths[cand + 8].view(u4)[:, 0] != incl)
        j = int(miss[0]) if len(miss) else k
        if j:
            if offs:
                parts.append(np.asarray(offs, dtype=np.int64))
                offs = []
                append = offs.append
            parts.append(cand[:j])
            off += j * step
        if j == k:
            span = min(span * 4, 1 << 16)
        else:
            same = 0
            span = max(64, 2 * j)
            need = 4 if j >= 32 else min(need * 2, 1024)
    if offs:
        parts.append(np.asarray(offs, dtype=np.int64))
    if not parts:
        return np.empty(0, dtype=np.int64), off
    return (np.concatenate(parts) if len(parts) > 1 else parts[0]), off
