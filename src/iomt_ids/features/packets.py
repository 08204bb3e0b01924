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

This module is the public face of the readers; the work is split by concern:

* :mod:`~iomt_ids.features.batch`: :class:`Frames`, :class:`PacketBatch`, :class:`CaptureStats`
  and the batch building every format shares;
* :mod:`~iomt_ids.features.capfile`: opening a file (plain or gzip), chunked reads,
  the notes on truncated or corrupt records;
* :mod:`~iomt_ids.features.pcap` and :mod:`~iomt_ids.features.pcapng`: one reader per format.

Timestamps are float64 epoch seconds computed the way dpkt does
(``sec + frac / 1e6`` for pcap, ``tsoffset + ts64 / divisor`` for pcapng), so
the quantisation of the training data is reproduced. A Simple Packet Block has
no timestamp; it gets the timestamp of the previous packet (0.0 if none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iomt_ids.exceptions import CaptureError, ConfigError
from iomt_ids.features.batch import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    MAX_RECORD,
    PAD,
    SUPPORTED_LINKTYPES,
    CaptureStats,
    Frames,
    PacketBatch,
)
from iomt_ids.features.capfile import CaptureFile
from iomt_ids.features.pcap import PCAP_MAGICS, iter_pcap, read_pcap_header
from iomt_ids.features.pcapng import PCAPNG_MAGIC, iter_pcapng

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "MAX_RECORD",
    "PAD",
    "SUPPORTED_LINKTYPES",
    "CaptureReader",
    "CaptureStats",
    "Frames",
    "PacketBatch",
    "read_capture",
]


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
            raise ConfigError(f"read_capture: batch_size must be >= 1; got {batch_size} instead.")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self._file = CaptureFile(self.path)
        self.stats: CaptureStats = self._file.stats
        self.file_size = self._file.file_size
        self.compressed = self._file.compressed
        self.linktype: int | None = None
        head = self._file.head
        if head in PCAP_MAGICS:
            self.format = "pcap"
            try:
                endian, divisor, self.linktype = read_pcap_header(self._file)
            except CaptureError:
                self.close()
                raise
            self._gen = iter_pcap(self._file, endian, divisor, self.linktype, self.batch_size)
        elif head == PCAPNG_MAGIC:
            self.format = "pcapng"
            self._gen = iter_pcapng(self._file, self.batch_size)
        else:
            self.close()
            what = "empty file" if not head else f"magic bytes {head.hex()}"
            where = "byte offset 0 after gzip decompression" if self.compressed else "byte offset 0"
            raise CaptureError(
                f"{self.path}: not a pcap or pcapng capture ({where}: {what}; expected "
                f"a1b2c3d4/a1b23c4d or their byte-swapped forms, or 0a0d0d0a)."
            )

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
        self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


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
    ConfigError
        ``batch_size`` is below 1.
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
