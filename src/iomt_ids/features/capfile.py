"""The bytes of a capture file, plain or gzip-compressed, read in large chunks.

:class:`CaptureFile` is what the per-format readers (:mod:`~iomt_ids.features.pcap`,
:mod:`~iomt_ids.features.pcapng`) read from: it opens the file, recognises gzip by its
magic bytes (``1f 8b``) and decompresses on the fly, hands out fresh zero-padded
chunks (:meth:`CaptureFile.fill`), and records the problems that end a file early
(a truncated record, a corrupt header, a broken gzip stream) in the shared
:class:`~iomt_ids.features.batch.CaptureStats`.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.batch import PAD, CaptureStats

__all__ = ["GZIP_MAGIC", "CaptureFile"]

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
#: Bytes read per chunk (plus whatever the previous chunk left unfinished).
_CHUNK = 16 * 1024 * 1024


class CaptureFile:
    """One capture file opened for reading, with the counts of what was read.

    Parameters
    ----------
    path : str or os.PathLike
        The capture; gzip-compressed when it starts with the gzip magic, whatever its name.

    Attributes
    ----------
    path : pathlib.Path
    stats : CaptureStats
        Shared with the format reader: bytes read, records skipped, errors.
    file_size : int
        Size of the capture in bytes; for a gzip-compressed file, its uncompressed
        size as the gzip trailer records it (modulo 4 GiB).
    compressed : bool
        True when the file is gzip-compressed.
    head : bytes
        The first 4 bytes of the (uncompressed) capture: its magic number.

    Raises
    ------
    CaptureError
        The file cannot be opened, or is gzip-compressed but cannot be decompressed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.stats = CaptureStats()
        self._raw: BinaryIO | None = None  # the compressed file under a gzip reader
        try:
            self.file_size = self.path.stat().st_size
            self._fh: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open capture: {exc.strerror or exc}") from exc
        head = self._fh.read(4)
        self.compressed = head[:2] == GZIP_MAGIC
        if self.compressed:
            head = self._open_gzip()
        self.head = head

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

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (a file header); fewer at the end of the data."""
        return self._fh.read(n)

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

    def fill(self, leftover: bytes) -> tuple[np.ndarray, int, bool]:
        """The next chunk: ``leftover`` (the unfinished tail of the last chunk) and fresh data.

        Every chunk is a new buffer (batches handed out may still point into the last one),
        with :data:`~iomt_ids.features.batch.PAD` zero bytes after the data so that record
        walks and the dissector need no bounds checks.

        Returns
        -------
        (buffer, end, eof)
            uint8 buffer, the number of data bytes in it, and whether the file is exhausted.
        """
        size = len(leftover) + _CHUNK
        arr = np.empty(size + PAD, dtype=np.uint8)  # not zeroed: the OS maps fresh pages
        arr[: len(leftover)] = np.frombuffer(leftover, dtype=np.uint8)
        nread = self._readinto(memoryview(arr)[len(leftover) : size])
        end = len(leftover) + nread
        arr[end : end + PAD] = 0
        return arr, end, nread < _CHUNK

    def truncated(self, pos: int, nbytes: int) -> None:
        """Note that the file ends ``nbytes`` into a record starting at byte ``pos``."""
        self.stats.skip("truncated_record")
        self.stats.bytes_read = pos + nbytes
        msg = f"{self.path}: file ends inside a record at byte offset {pos:,} ({nbytes} bytes left); record skipped"
        self.stats.errors.append(msg)
        logger.warning(msg)

    def corrupt(self, pos: int, why: str) -> None:
        """Note a corrupt record header at byte ``pos`` that stopped reading."""
        self.stats.skip("corrupt_record")
        msg = (
            f"{self.path}: corrupt record at byte offset {pos:,} ({why}); stopped reading, "
            f"{max(self.file_size - pos, 0):,} bytes ignored"
        )
        self.stats.errors.append(msg)
        logger.warning(msg)

    def close(self) -> None:
        """Close the file (and the compressed file under a gzip reader)."""
        if not self._fh.closed:
            self._fh.close()
        if self._raw is not None and not self._raw.closed:
            self._raw.close()
