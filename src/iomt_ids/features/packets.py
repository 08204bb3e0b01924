"""Read packet captures (classic pcap and pcapng) into batches of raw frames.

:func:`read_capture` walks the file record by record in plain Python (only the
record lengths are read there) and decodes the record headers with NumPy, so a
batch of 65,536 packets costs a few milliseconds. Frames are not copied out of
the file buffer: a :class:`Frames` object is a ``Sequence[bytes]`` view over one
buffer plus offsets and lengths, which :class:`~iomt_ids.features.windows.WindowExtractor`
dissects in bulk.

Supported formats: classic pcap in both byte orders with the microsecond
(``a1b2c3d4``) or nanosecond (``a1b23c4d``) magic; pcapng with Enhanced, Simple
and (obsolete) Packet Blocks, several interfaces and sections, both byte orders.
Supported link types: Ethernet (1), Linux cooked SLL (113) and SLL2 (276).
A gzip-compressed capture (``.pcap.gz``, ``.pcapng.gz``; recognised by the gzip
magic ``1f 8b``, whatever its name) is decompressed on the fly as it is read.

Timestamps are float64 epoch seconds computed the way dpkt does
(``sec + frac / 1e6`` for pcap, ``tsoffset + ts64 / divisor`` for pcapng), so
the quantisation of the training data is reproduced. A Simple Packet Block has
no timestamp; it gets the timestamp of the previous packet (0.0 if none).
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from iomt_ids.exceptions import CaptureError

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "SUPPORTED_LINKTYPES",
    "CaptureReader",
    "CaptureStats",
    "Frames",
    "PacketBatch",
    "read_capture",
]

logger = logging.getLogger(__name__)

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES: dict[int, str] = {
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

#: Zero bytes kept after the last frame of a buffer so that bulk dissection may
#: read fixed offsets past a short frame without bounds checks.
PAD = 160
#: Records larger than this are taken as a corrupt header (Wireshark uses 256 KiB
#: for most link types; we allow jumbo/TSO frames up to 16 MiB).
MAX_RECORD = 16 * 1024 * 1024
_CHUNK = 16 * 1024 * 1024

_PCAP_MAGICS: dict[bytes, tuple[str, float]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class CaptureStats:
    """Running counts of one capture (file or live), updated as packets go by.

    Attributes
    ----------
    packets_read : int
        Records read from the capture (or frames fed to an extractor).
    packets_accepted : int
        Frames that became a window record (Ethernet IPv4 or ARP).
    skipped : dict[str, int]
        Frames or records dropped, by reason (``ipv6``, ``non_ip``, ``vlan``,
        ``truncated_frame``, ``malformed_ipv4``, ``malformed_arp``,
        ``truncated_record``, ``corrupt_record``, ``linktype_<n>`` ...).
    bytes_read : int
        Bytes of the capture file consumed so far.
    errors : list[str]
        One line per problem that stopped reading early (file, byte offset, why).
    """

    packets_read: int = 0
    packets_accepted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        """Add ``n`` to the count of frames skipped for ``reason``."""
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + int(n)

    def merge(self, other: CaptureStats) -> None:
        """Add the counts of ``other`` to these counts."""
        self.packets_read += other.packets_read
        self.packets_accepted += other.packets_accepted
        self.bytes_read += other.bytes_read
        for reason, n in other.skipped.items():
            self.skip(reason, n)
        self.errors.extend(other.errors)

    def summary(self) -> str:
        """One line: packets read, accepted and skipped by reason."""
        skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"packets read {self.packets_read:,}, accepted {self.packets_accepted:,}, "
            f"skipped: {skipped}, bytes {self.bytes_read:,}"
        )


class Frames(Sequence[bytes]):
    """The frames of a batch as a ``Sequence[bytes]`` backed by one buffer.

    Parameters
    ----------
    buffer : numpy.ndarray
        uint8 buffer holding the frames, followed by at least :data:`PAD` spare bytes.
    offsets, lengths : numpy.ndarray
        int64 start offset and captured length of each frame in ``buffer``.

    Indexing gives ``bytes`` (a copy of one frame); bulk consumers read
    :attr:`buffer`, :attr:`offsets` and :attr:`lengths` directly.
    """

    __slots__ = ("buffer", "lengths", "offsets")

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        self.buffer = buffer
        self.offsets = offsets
        self.lengths = lengths

    @classmethod
    def from_list(cls, frames: Sequence[bytes]) -> Frames:
        """Pack a sequence of ``bytes`` frames into one padded buffer."""
        if isinstance(frames, Frames):
            return frames
        lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
        offsets = np.zeros(len(frames), dtype=np.int64)
        if len(frames) > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        joined = b"".join(frames) + bytes(PAD)
        return cls(np.frombuffer(joined, dtype=np.uint8), offsets, lengths)

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Frames: ...
    def __getitem__(self, index: int | slice) -> bytes | Frames:
        if isinstance(index, slice):
            return Frames(self.buffer, self.offsets[index], self.lengths[index])
        start = int(self.offsets[index])
        return self.buffer[start : start + int(self.lengths[index])].tobytes()

    def __iter__(self) -> Iterator[bytes]:
        buf = self.buffer
        for start, n in zip(self.offsets.tolist(), self.lengths.tolist(), strict=True):
            yield buf[start : start + n].tobytes()

    def __repr__(self) -> str:
        return f"Frames(n={len(self)})"


@dataclass
class PacketBatch:
    """Consecutive packets of one capture that share a link type.

    Attributes
    ----------
    ts : numpy.ndarray
        float64 epoch seconds, one per packet.
    frames : Frames
        The captured bytes of each packet (a ``Sequence[bytes]``).
    linktype : int
        The pcap link type of every packet in the batch (1, 113 or 276).
    record_sizes : numpy.ndarray
        int64 size each packet takes in a classic pcap file (16 + caplen); used
        to replicate ``tcpdump -C`` chunking.
    """

    ts: np.ndarray
    frames: Frames
    linktype: int
    record_sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


class CaptureReader(Iterator[PacketBatch]):
    """Iterator of :class:`PacketBatch` over one capture file; see :func:`read_capture`.

    Attributes
    ----------
    path : pathlib.Path
    format : str
        ``"pcap"`` or ``"pcapng"``.
    stats : CaptureStats
        Records read, bytes read, records skipped at the file level.
    file_size : int
        Size of the capture in bytes; for a gzip-compressed file, its uncompressed
        size as the gzip trailer records it (modulo 4 GiB), so that ``stats.bytes_read``
        (uncompressed bytes) can be compared with it.
    compressed : bool
        True when the file is gzip-compressed (byte offsets in messages are then
        offsets in the uncompressed capture).
    linktype : int or None
        The link type of a classic pcap (known on opening); None for pcapng, whose
        batches each carry their interface's link type.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 65536) -> None:
        if batch_size < 1:
            raise CaptureError(f"batch_size must be >= 1; got {batch_size} instead.")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.stats = CaptureStats()
        try:
            self.file_size = self.path.stat().st_size
            self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()/exhaustion
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open capture: {exc.strerror or exc}") from exc
        head = self._fh.read(4)
        self._raw: BinaryIO | None = None  # the compressed file under a gzip reader
        self.compressed = head[:2] == _GZIP_MAGIC
        if self.compressed:
            head = self._open_gzip()
        self.linktype: int | None = None
        if head in _PCAP_MAGICS:
            self.format = "pcap"
            try:
                endian, divisor = self._read_pcap_header(head)
            except CaptureError:
                self.close()
                raise
            self._gen: Iterator[PacketBatch] = self._iter_pcap(endian, divisor)
        elif head == _PCAPNG_SHB:
            self.format = "pcapng"
            self._gen = self._iter_pcapng()
        else:
            self.close()
            what = "empty file" if not head else f"magic bytes {head.hex()}"
            where = "byte offset 0 after gzip decompression" if self.compressed else "byte offset 0"
            raise CaptureError(
                f"{self.path}: not a pcap or pcapng capture ({where}: {what}; expected "
                f"a1b2c3d4/a1b23c4d or their byte-swapped forms, or 0a0d0d0a)."
            )

    def _open_gzip(self) -> bytes:
        """Re-open the file through gzip; return the first 4 bytes of the uncompressed capture."""
        raw = self._fh
        try:
            if self.file_size >= 18:  # ISIZE: uncompressed size mod 2**32, in the last 4 bytes
                raw.seek(-4, os.SEEK_END)
                self.file_size = struct.unpack("<I", raw.read(4))[0]
            raw.seek(0)
            self._fh = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            self._raw = raw
            return self._fh.read(4)
        except (OSError, EOFError, zlib.error) as exc:
            raw.close()
            raise CaptureError(f"{self.path}: gzip-compressed, but cannot decompress it: {exc}") from exc

    def _readinto(self, view: memoryview) -> int:
        """Fill ``view`` from the capture; a broken gzip stream ends the data (noted in stats)."""
        if not self.compressed:
            return self._fh.readinto(view) or 0
        got = 0
        try:
            # read1: one decompression step per call, so a stream cut short loses nothing before the cut
            while got < len(view):
                part = self._fh.read1(len(view) - got)  # type: ignore[attr-defined]
                if not part:
                    break
                view[got : got + len(part)] = part
                got += len(part)
        except (OSError, EOFError, zlib.error) as exc:
            self.stats.skip("corrupt_gzip")
            msg = f"{self.path}: gzip stream broken ({exc}); stopped reading"
            self.stats.errors.append(msg)
            logger.warning(msg)
        return got

    # -- iterator protocol ---------------------------------------------------------------
    def __iter__(self) -> CaptureReader:
        return self

    def __next__(self) -> PacketBatch:
        try:
            return next(self._gen)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (also done when the iterator is exhausted)."""
        if not self._fh.closed:
            self._fh.close()
        if self._raw is not None and not self._raw.closed:
            self._raw.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- classic pcap ---------------------------------------------------------------------
    def _read_pcap_header(self, magic: bytes) -> tuple[str, float]:
        endian, divisor = _PCAP_MAGICS[magic]
        rest = self._fh.read(20)
        if len(rest) < 20:
            raise CaptureError(f"{self.path}: truncated pcap file header ({4 + len(rest)} of 24 bytes).")
        _vmaj, _vmin, _zone, _sigfigs, _snaplen, linktype_field = struct.unpack(endian + "HHiIII", rest)
        linktype = linktype_field & 0xFFFF
        if linktype not in SUPPORTED_LINKTYPES:
            raise CaptureError(
                f"{self.path}: unsupported link type {linktype} (DLT/LINKTYPE number); expected one of "
                + ", ".join(f"{k} ({v})" for k, v in SUPPORTED_LINKTYPES.items())
                + "."
            )
        self.linktype = linktype
        self.stats.bytes_read = 24
        return endian, divisor

    def _iter_pcap(self, endian: str, divisor: float) -> Iterator[PacketBatch]:
        incl_of = struct.Struct(endian + "I").unpack_from
        hdr_dtype = np.dtype(endian + "u4")
        file_pos = 24  # file offset of buf[0]
        leftover = b""
        while True:
            # one fresh buffer per chunk (batches handed out may still point into the last one),
            # with PAD zero bytes after the data so the walk and the dissector need no bounds checks
            size = len(leftover) + _CHUNK
            arr = np.empty(size + PAD, dtype=np.uint8)  # not zeroed: the OS maps fresh pages
            arr[: len(leftover)] = np.frombuffer(leftover, dtype=np.uint8)
            nread = self._readinto(memoryview(arr)[len(leftover) : size])
            eof = nread < _CHUNK
            end = len(leftover) + nread
            arr[end : end + PAD] = 0
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
            for i in range(0, len(o), self.batch_size):
                part = o[i : i + self.batch_size]
                yield self._pcap_batch(arr, part, hdr_dtype, divisor)
                nxt = i + self.batch_size
                self.stats.bytes_read = file_pos + (int(o[nxt]) if nxt < len(o) else off)
            if corrupt:
                self._corrupt(file_pos + off, corrupt)
                return
            leftover = arr[off:end].tobytes()
            del buf, arr  # let the chunk go before the next one is allocated
            file_pos += off
            self.stats.bytes_read = file_pos
            if eof:
                if leftover:
                    self._truncated(file_pos, len(leftover))
                return

    def _pcap_batch(self, arr: np.ndarray, o: np.ndarray, hdr_dtype: np.dtype, divisor: float) -> PacketBatch:
        hdr = sliding_window_view(arr, 12)[o].view(hdr_dtype)  # (n, 3): sec, frac, incl
        ts = hdr[:, 0].astype(np.float64)
        ts += hdr[:, 1] / divisor  # dpkt: tv_sec + tv_usec / 1e6
        caplen = hdr[:, 2].astype(np.int64)
        self.stats.packets_read += len(o)
        return PacketBatch(ts, Frames(arr, o + 16, caplen), self.linktype, caplen + 16)

    def _truncated(self, pos: int, nbytes: int) -> None:
        self.stats.skip("truncated_record")
        self.stats.bytes_read = pos + nbytes
        msg = f"{self.path}: file ends inside a record at byte offset {pos:,} ({nbytes} bytes left); record skipped"
        self.stats.errors.append(msg)
        logger.warning(msg)

    def _corrupt(self, pos: int, why: str) -> None:
        self.stats.skip("corrupt_record")
        msg = (
            f"{self.path}: corrupt record at byte offset {pos:,} ({why}); stopped reading, "
            f"{max(self.file_size - pos, 0):,} bytes ignored"
        )
        self.stats.errors.append(msg)
        logger.warning(msg)

    # -- pcapng ---------------------------------------------------------------------------
    def _iter_pcapng(self) -> Iterator[PacketBatch]:
        file_pos = 0
        leftover = _PCAPNG_SHB
        endian = "<"
        # per interface: (linktype, divisor, tsoffset, snaplen)
        ifaces: list[tuple[int, float, int, int]] = []
        last_ts = 0.0
        warned: set[int] = set()
        while True:
            size = len(leftover) + _CHUNK
            arr = np.empty(size + PAD, dtype=np.uint8)  # see _iter_pcap
            arr[: len(leftover)] = np.frombuffer(leftover, dtype=np.uint8)
            nread = self._readinto(memoryview(arr)[len(leftover) : size])
            eof = nread < _CHUNK
            end = len(leftover) + nread
            arr[end : end + PAD] = 0
            buf = memoryview(arr)
            off = 0
            pkt_offs: list[int] = []
            kinds: list[int] = []  # 6 EPB, 3 SPB, 2 PB
            bad = ""
            unpack_block = struct.Struct(endian + "II").unpack_from
            while off + 12 <= end:
                btype, blen = unpack_block(buf, off)
                if btype == 6 and 32 <= blen <= MAX_RECORD and not blen % 4 and off + blen <= end:
                    pkt_offs.append(off)  # the common case: an Enhanced Packet Block
                    kinds.append(6)
                    off += blen
                    if len(pkt_offs) >= self.batch_size:
                        last_ts = yield from self._ng_batches(
                            arr, pkt_offs, kinds, ifaces, endian, last_ts, warned
                        )
                        pkt_offs, kinds = [], []
                        self.stats.bytes_read = file_pos + off
                    continue
                new_endian = endian
                if btype == 0x0A0D0D0A:
                    bom = bytes(buf[off + 8 : off + 12])
                    new_endian = (
                        "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
                    )
                    if not new_endian:
                        bad = f"section header with unknown byte-order magic {bom.hex()}"
                        break
                    blen = struct.unpack_from(new_endian + "I", buf, off + 4)[0]
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    bad = f"block type 0x{btype:08x} with invalid length {blen}"
                    break
                if off + blen > end:
                    break
                if btype == 6 or btype == 3 or btype == 2:
                    pkt_offs.append(off)
                    kinds.append(btype)
                elif btype == 1:  # IDB
                    if pkt_offs:  # interfaces change: emit what came before
                        last_ts = yield from self._ng_batches(
                            arr, pkt_offs, kinds, ifaces, endian, last_ts, warned
                        )
                        pkt_offs, kinds = [], []
                    ifaces.append(_parse_idb(buf, off, blen, endian))
                elif btype == 0x0A0D0D0A:
                    if pkt_offs:
                        last_ts = yield from self._ng_batches(
                            arr, pkt_offs, kinds, ifaces, endian, last_ts, warned
                        )
                        pkt_offs, kinds = [], []
                    ifaces = []
                    endian = new_endian
                    unpack_block = struct.Struct(endian + "II").unpack_from
                off += blen
                if len(pkt_offs) >= self.batch_size:
                    last_ts = yield from self._ng_batches(
                        arr, pkt_offs, kinds, ifaces, endian, last_ts, warned
                    )
                    pkt_offs, kinds = [], []
                    self.stats.bytes_read = file_pos + off
            if pkt_offs:
                last_ts = yield from self._ng_batches(arr, pkt_offs, kinds, ifaces, endian, last_ts, warned)
            self.stats.bytes_read = file_pos + off
            if bad:
                self._corrupt(file_pos + off, bad)
                return
            leftover = arr[off:end].tobytes()
            del buf, arr  # let the chunk go before the next one is allocated
            file_pos += off
            if eof:
                if leftover:
                    self._truncated(file_pos, len(leftover))
                return

    def _ng_batches(
        self,
        arr: np.ndarray,
        offs: list[int],
        kinds: list[int],
        ifaces: list[tuple[int, float, int, int]],
        endian: str,
        last_ts: float,
        warned: set[int],
    ) -> Iterator[PacketBatch]:
        """Decode the packet blocks at ``offs`` and yield one batch per link-type run."""
        o = np.asarray(offs, dtype=np.int64)
        k = np.asarray(kinds, dtype=np.int64)
        n = len(o)
        self.stats.packets_read += n
        u4 = np.dtype(endian + "u4")
        words = arr[o[:, None] + np.arange(28)].view(u4)  # type, len, w2..w6
        blen = words[:, 1].astype(np.int64)
        is_spb = k == 3
        iface = np.where(k == 6, words[:, 2], 0).astype(np.int64)
        if (k == 2).any():  # obsolete Packet Block: 16-bit interface id
            u2 = np.dtype(endian + "u2")
            iface_pb = arr[o[:, None] + np.arange(8, 10)].view(u2)[:, 0].astype(np.int64)
            iface = np.where(k == 2, iface_pb, iface)
        if not ifaces or (iface >= len(ifaces)).any():
            pos = int(o[0]) if not ifaces else int(o[np.argmax(iface >= len(ifaces))])
            raise CaptureError(
                f"{self.path}: packet block at buffer offset {pos:,} refers to an interface that no "
                f"Interface Description Block declared ({len(ifaces)} declared)."
            )
        lt = np.asarray([i[0] for i in ifaces], dtype=np.int64)[iface]
        div = np.asarray([i[1] for i in ifaces], dtype=np.float64)[iface]
        tsoff = np.asarray([i[2] for i in ifaces], dtype=np.int64)[iface]
        ts64 = (words[:, 3].astype(np.uint64) << np.uint64(32)) | words[:, 4].astype(np.uint64)
        # dpkt: tsoffset + (ts64 / divisor)
        ts = tsoff + ts64.astype(np.float64) / div
        caplen = np.where(is_spb, 0, words[:, 5]).astype(np.int64)
        start = o + 28
        if is_spb.any():
            snap0 = ifaces[0][3] or MAX_RECORD
            origlen = words[:, 2].astype(np.int64)
            caplen = np.where(is_spb, np.minimum(np.minimum(origlen, blen - 16), snap0), caplen)
            start = np.where(is_spb, o + 12, start)
            # no timestamp: carry the previous packet's
            idx = np.where(is_spb, -1, np.arange(n))
            np.maximum.accumulate(idx, out=idx)
            ts = np.where(idx >= 0, ts[np.maximum(idx, 0)], last_ts)
        body_max = np.where(is_spb, blen - 16, blen - 32)
        bad = (caplen > body_max) | (caplen < 0)
        if bad.any():
            self.stats.skip("corrupt_record", int(bad.sum()))
            keep = ~bad
            ts, start, caplen, lt = ts[keep], start[keep], caplen[keep], lt[keep]
        if len(ts):
            last_ts = float(ts[-1])
        # split into runs of one link type, in order
        cut = np.flatnonzero(np.diff(lt)) + 1
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(lt)], strict=True):
            if a == b:
                continue
            linktype = int(lt[a])
            if linktype not in SUPPORTED_LINKTYPES:
                if not any(i[0] in SUPPORTED_LINKTYPES for i in ifaces):
                    raise CaptureError(
                        f"{self.path}: unsupported link type {linktype} (DLT/LINKTYPE number); expected one of "
                        + ", ".join(f"{k_} ({v})" for k_, v in SUPPORTED_LINKTYPES.items())
                        + "."
                    )
                self.stats.skip(f"linktype_{linktype}", int(b - a))
                if linktype not in warned:
                    warned.add(linktype)
                    logger.warning("%s: skipping packets of unsupported link type %d", self.path, linktype)
                continue
            cl = caplen[a:b]
            yield PacketBatch(ts[a:b], Frames(arr, start[a:b], cl), linktype, cl + 16)
        return last_ts


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


def _parse_idb(buf: memoryview, off: int, blen: int, endian: str) -> tuple[int, float, int, int]:
    """Return (linktype, ts divisor, ts offset in s, snaplen) of the IDB at ``off``."""
    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, off + 8)
    divisor, tsoffset = 1e6, 0
    pos, stop = off + 16, off + blen - 4
    while pos + 4 <= stop:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = buf[pos + 4 : pos + 4 + length]
        if code == 9 and length >= 1:  # if_tsresol
            v = value[0]
            divisor = float((2 if v & 0x80 else 10) ** (v & 0x7F))
        elif code == 14 and length >= 8:  # if_tsoffset
            tsoffset = struct.unpack(endian + "q", value[:8])[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, divisor, tsoffset, snaplen


def read_capture(path: str | os.PathLike[str], batch_size: int = 65536) -> CaptureReader:
    """Read a pcap or pcapng file as an iterator of :class:`PacketBatch`.

    Parameters
    ----------
    path : str or os.PathLike
        Capture file (classic pcap or pcapng; link types 1, 113, 276), plain or
        gzip-compressed (recognised by its magic bytes, not its name).
    batch_size : int, default 65536
        Most packets per batch. Batches also end where a pcapng file changes
        interface or section.

    Returns
    -------
    CaptureReader
        An iterator of batches; ``.stats`` holds the file-level counts.

    Raises
    ------
    CaptureError
        The file cannot be opened, is not a capture, or uses an unsupported link
        type. A record cut short at the end of the file, or a corrupt record
        header in the middle, does not raise: it is counted in ``stats.skipped``
        (``truncated_record`` / ``corrupt_record``), described in
        ``stats.errors`` with its byte offset, and reading stops there.

    Examples
    --------
    >>> for batch in read_capture("capture.pcap"):  # doctest: +SKIP
    ...     print(batch.linktype, len(batch), batch.ts[0])
    """
    return CaptureReader(path, batch_size=batch_size)
