"""What every capture reader produces: frames in one buffer, batches of them, running counts.

The per-format readers (:mod:`~iomt_ids.features.pcap`, :mod:`~iomt_ids.features.pcapng`)
build their batches with :func:`frames_batch` and report an unsupported link type with
:func:`unsupported_linktype`, so both formats hand out the same objects and messages.
The public names are re-exported by :mod:`iomt_ids.features.packets`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from iomt_ids.exceptions import CaptureError

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "MAX_RECORD",
    "PAD",
    "SUPPORTED_LINKTYPES",
    "CaptureStats",
    "Frames",
    "PacketBatch",
    "frames_batch",
    "unsupported_linktype",
]

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


def frames_batch(
    buffer: np.ndarray, ts: np.ndarray, starts: np.ndarray, caplen: np.ndarray, linktype: int
) -> PacketBatch:
    """The batch of the frames at ``starts`` in ``buffer``, whatever the capture format.

    Parameters
    ----------
    buffer : numpy.ndarray
        uint8 chunk of the capture, followed by :data:`PAD` zero bytes.
    ts : numpy.ndarray
        float64 epoch seconds of each packet.
    starts, caplen : numpy.ndarray
        int64 offset of each frame in ``buffer`` and its captured length.
    linktype : int
        The link type shared by every frame.

    Returns
    -------
    PacketBatch
        The frames as a view over ``buffer`` (no copy); ``record_sizes`` is
        ``caplen + 16``, the size each packet takes in a classic pcap file.
    """
    return PacketBatch(ts, Frames(buffer, starts, caplen), linktype, caplen + 16)


def unsupported_linktype(path: Path, linktype: int) -> CaptureError:
    """The error for a capture whose only link type is not one of :data:`SUPPORTED_LINKTYPES`."""
    return CaptureError(
        f"{path}: unsupported link type {linktype} (DLT/LINKTYPE number); expected one of "
        + ", ".join(f"{k} ({v})" for k, v in SUPPORTED_LINKTYPES.items())
        + "."
    )
