"""pcapng: sections of blocks; interfaces declared by blocks, packets in blocks that name one.

Enhanced, Simple and (obsolete) Packet Blocks, several interfaces and sections, both
byte orders (each Section Header Block sets its own). Timestamps are computed the way
dpkt does (``tsoffset + ts64 / divisor``, from the interface's ``if_tsresol`` and
``if_tsoffset``). A Simple Packet Block has no timestamp; it gets the timestamp of the
previous packet (0.0 if none).

The blocks are walked one by one in plain Python (:func:`_walk_blocks`, only the block
type and length are read there) up to a boundary: a full batch, an Interface
Description Block, a Section Header Block, the end of the chunk or a corrupt block.
The packets before a boundary are decoded in bulk with NumPy (:meth:`_Decoder.batches`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator

import numpy as np

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.batch import (
    MAX_RECORD,
    SUPPORTED_LINKTYPES,
    PacketBatch,
    frames_batch,
    unsupported_linktype,
)
from iomt_ids.features.capfile import CaptureFile

__all__ = ["PCAPNG_MAGIC", "iter_pcapng"]

logger = logging.getLogger(__name__)

#: The block type of a Section Header Block, as the file's first 4 bytes.
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_SHB = 0x0A0D0D0A
_IDB = 1
_EPB, _SPB, _PB = 6, 3, 2  # Enhanced, Simple, (obsolete) Packet Block
_BYTE_ORDERS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

# why _walk_blocks stopped
_FULL, _INTERFACE, _SECTION, _END, _BAD = range(5)

#: per interface: (linktype, timestamp divisor, timestamp offset in s, snaplen)
Interface = tuple[int, float, int, int]


def iter_pcapng(file: CaptureFile, batch_size: int) -> Iterator[PacketBatch]:
    """Batches of at most ``batch_size`` packets of a pcapng file whose magic was read.

    A batch also ends where an interface or a section begins, and holds packets of one
    link type. A block cut short by the end of the file, or a block with an impossible
    length, ends the reading; it is noted in ``file.stats``.

    Raises
    ------
    CaptureError
        A packet names an interface no Interface Description Block declared, or no
        interface of the section has a supported link type.
    """
    stats = file.stats
    decoder = _Decoder(file)
    file_pos = 0  # file offset of buf[0]
    leftover = PCAPNG_MAGIC
    while True:
        arr, end, eof = file.fill(leftover)
        buf = memoryview(arr)
        off = 0
        while True:
            offs, kinds, off, stop, blen, note = _walk_blocks(buf, off, end, decoder.endian, batch_size)
            if offs:
                yield from decoder.batches(arr, offs, kinds)
            if stop == _INTERFACE:
                decoder.ifaces.append(_parse_idb(buf, off, blen, decoder.endian))
                off += blen
            elif stop == _SECTION:
                decoder.ifaces, decoder.endian = [], note
                off += blen
            else:
                stats.bytes_read = file_pos + off
                if stop != _FULL:
                    break
        if stop == _BAD:
            file.corrupt(file_pos + off, note)
            return
        leftover = arr[off:end].tobytes()
        del buf, arr  # let the chunk go before the next one is allocated
        file_pos += off
        if eof:
            if leftover:
                file.truncated(file_pos, len(leftover))
            return


def _walk_blocks(
    buf: memoryview, off: int, end: int, endian: str, room: int
) -> tuple[list[int], list[int], int, int, int, str]:
    """The packet blocks from ``off`` up to the next boundary, and what the boundary is.

    Returns
    -------
    (offs, kinds, off, stop, blen, note)
        Offsets and block types of the packet blocks; where the walk stopped; why
        (``_FULL``: ``room`` packets; ``_INTERFACE`` / ``_SECTION``: an IDB / SHB of
        ``blen`` bytes starts at ``off``, ``note`` is the new section's byte order;
        ``_END``: the next block does not fit in ``buf[:end]``; ``_BAD``: an impossible
        block at ``off``, described by ``note``).
    """
    offs: list[int] = []
    kinds: list[int] = []
    unpack_block = struct.Struct(endian + "II").unpack_from
    while off + 12 <= end:
        btype, blen = unpack_block(buf, off)
        if btype == _EPB and 32 <= blen <= MAX_RECORD and not blen % 4 and off + blen <= end:
            offs.append(off)  # the common case: an Enhanced Packet Block
            kinds.append(_EPB)
            off += blen
            if len(offs) >= room:
                return offs, kinds, off, _FULL, 0, ""
            continue
        new_endian = ""
        if btype == _SHB:
            bom = bytes(buf[off + 8 : off + 12])
            new_endian = _BYTE_ORDERS.get(bom, "")
            if not new_endian:
                return offs, kinds, off, _BAD, 0, f"section header with unknown byte-order magic {bom.hex()}"
            blen = struct.unpack_from(new_endian + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            return offs, kinds, off, _BAD, 0, f"block type 0x{btype:08x} with invalid length {blen}"
        if off + blen > end:
            break
        if btype == _SHB:
            return offs, kinds, off, _SECTION, blen, new_endian
        if btype == _IDB:
            return offs, kinds, off, _INTERFACE, blen, ""
        if btype == _EPB or btype == _SPB or btype == _PB:
            offs.append(off)
            kinds.append(btype)
        off += blen
        if len(offs) >= room:
            return offs, kinds, off, _FULL, 0, ""
    return offs, kinds, off, _END, 0, ""


class _Decoder:
    """The state packets are decoded with: the section's byte order and interfaces, the last timestamp."""

    def __init__(self, file: CaptureFile) -> None:
        self.file = file
        self.endian = "<"
        self.ifaces: list[Interface] = []
        self.last_ts = 0.0  # what a Simple Packet Block at the start of a batch carries
        self.warned: set[int] = set()  # unsupported link types already logged

    def batches(self, arr: np.ndarray, offs: list[int], kinds: list[int]) -> Iterator[PacketBatch]:
        """Decode the packet blocks at ``offs`` of ``arr`` and yield one batch per link-type run."""
        ifaces, endian, stats = self.ifaces, self.endian, self.file.stats
        o = np.asarray(offs, dtype=np.int64)
        k = np.asarray(kinds, dtype=np.int64)
        n = len(o)
        stats.packets_read += n
        u4 = np.dtype(endian + "u4")
        words = arr[o[:, None] + np.arange(28)].view(u4)  # type, len, w2..w6
        blen = words[:, 1].astype(np.int64)
        is_spb = k == _SPB
        iface = np.where(k == _EPB, words[:, 2], 0).astype(np.int64)
        if (k == _PB).any():  # obsolete Packet Block: 16-bit interface id
            u2 = np.dtype(endian + "u2")
            iface_pb = arr[o[:, None] + np.arange(8, 10)].view(u2)[:, 0].astype(np.int64)
            iface = np.where(k == _PB, iface_pb, iface)
        if not ifaces or (iface >= len(ifaces)).any():
            pos = int(o[0]) if not ifaces else int(o[np.argmax(iface >= len(ifaces))])
            raise CaptureError(
                f"{self.file.path}: packet block at buffer offset {pos:,} refers to an interface that no "
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
            ts = np.where(idx >= 0, ts[np.maximum(idx, 0)], self.last_ts)
        body_max = np.where(is_spb, blen - 16, blen - 32)
        bad = (caplen > body_max) | (caplen < 0)
        if bad.any():
            stats.skip("corrupt_record", int(bad.sum()))
            keep = ~bad
            ts, start, caplen, lt = ts[keep], start[keep], caplen[keep], lt[keep]
        if len(ts):
            self.last_ts = float(ts[-1])
        # split into runs of one link type, in order
        cut = np.flatnonzero(np.diff(lt)) + 1
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(lt)], strict=True):
            if a == b:
                continue
            linktype = int(lt[a])
            if linktype not in SUPPORTED_LINKTYPES:
                if not any(i[0] in SUPPORTED_LINKTYPES for i in ifaces):
                    raise unsupported_linktype(self.file.path, linktype)
                stats.skip(f"linktype_{linktype}", int(b - a))
                if linktype not in self.warned:
                    self.warned.add(linktype)
                    logger.warning(
                        "%s: skipping packets of unsupported link type %d", self.file.path, linktype
                    )
                continue
            yield frames_batch(arr, ts[a:b], start[a:b], caplen[a:b], linktype)


def _parse_idb(buf: memoryview, off: int, blen: int, endian: str) -> Interface:
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
