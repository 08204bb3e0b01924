"""Packet sources for the detector: a capture file, or a live interface through pcapy-ng.

Both yield :class:`~iomt_ids.features.packets.PacketBatch` objects (float64 epoch
timestamps, frames, link type) from :meth:`batches`, which returns when the input
ends or when the ``stop`` event is set.

:class:`LiveSource` runs libpcap in a capture thread: BPF filter ``arp or ip`` in
the kernel, non-blocking reads of up to ``max_batch`` packets at a time, and a
bounded queue between the capture thread and the detector (``max_queue_bytes``).
When the detector falls behind, whole batches are dropped and counted
(``queue_dropped``) instead of growing memory; drops inside libpcap / the kernel
come from ``pcap_stats`` (``pcap_dropped``, ``if_dropped``). While the link is
idle the live source yields empty batches about every ``idle_s`` seconds, so the
caller can check its clock and stop flag.

pcapy-ng is an optional dependency (``pip install 'iomt-ids[capture]'``); its
wheels bundle libpcap, so no system package is needed to capture.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.exceptions import CaptureError, ConfigError
from iomt_ids.features.packets import PAD, Frames, PacketBatch, read_capture

__all__ = ["DEFAULT_BPF", "LiveSource", "PcapSource", "SourceStats"]

logger = logging.getLogger(__name__)

#: Only IPv4 and ARP frames make window records (spec §2.2); filter the rest in the kernel.
DEFAULT_BPF = "arp or ip"
_INSTALL_HINT = "pip install 'iomt-ids[capture]'"


@dataclass
class SourceStats:
    """Counters of a packet source.

    Attributes
    ----------
    packets : int
        Packets handed to the detector.
    pcap_received, pcap_dropped, if_dropped : int
        libpcap's ``pcap_stats`` (live capture only).
    queue_dropped : int
        Packets dropped because the detector fell behind the capture thread.
    """

    packets: int = 0
    pcap_received: int = 0
    pcap_dropped: int = 0
    if_dropped: int = 0
    queue_dropped: int = 0

    @property
    def dropped(self) -> int:
        """All packets lost before the detector saw them."""
        return self.pcap_dropped + self.if_dropped + self.queue_dropped

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "dropped": self.dropped}


def _empty_batch(linktype: int) -> PacketBatch:
    z = np.zeros(0, np.int64)
    return PacketBatch(np.zeros(0), Frames(np.zeros(PAD, np.uint8), z, z), linktype, z)


class PcapSource:
    """Replay a pcap / pcapng file (see :func:`~iomt_ids.features.packets.read_capture`).

    Parameters
    ----------
    path : str or os.PathLike
        The capture file. It is opened at once, so a missing or unreadable file
        raises :class:`~iomt_ids.exceptions.CaptureError` here.
    batch_size : int, default 65536
        Packets per batch.
    """

    live = False

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 65536) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise CaptureError(f"pcap {self.path}: is a folder; expected a pcap or pcapng file.")
        self._reader = read_capture(self.path, batch_size=batch_size)
        self.stats = SourceStats()

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def capture_stats(self) -> Any:
        """The reader's :class:`~iomt_ids.features.packets.CaptureStats` (skips, errors)."""
        return self._reader.stats

    def batches(self, stop: threading.Event | None = None) -> Iterator[PacketBatch]:
        """Yield the file's batches until its end or until ``stop`` is set."""
        try:
            for batch in self._reader:
                self.stats.packets += len(batch)
                yield batch
                if stop is not None and stop.is_set():
                    return
        finally:
            self._reader.close()

    def close(self) -> None:
        self._reader.close()


class LiveSource:
    """Capture from a network interface with pcapy-ng (libpcap).

    Parameters
    ----------
    interface : str
        Interface name (``eth0``, a veth, ``lo``).
    snaplen : int, default 65535
        Bytes captured per packet.
    promisc : bool, default True
        Put the interface in promiscuous mode (a mirror/SPAN port needs it).
    timeout_ms : int, default 100
        libpcap read timeout (packet buffer timeout).
    bpf : str, default ``"arp or ip"``
        Kernel filter; the windows only use IPv4 and ARP.
    max_batch : int, default 8192
        Most packets read in one call.
    max_queue_bytes : int, default 64 MiB
        Bound on captured bytes waiting for the detector; beyond it, batches are
        dropped and counted in ``stats.queue_dropped``.
    idle_s : float, default 0.2
        While no packets come, an empty batch is yielded this often.
    """

    live = True

    def __init__(
        self,
        interface: str,
        snaplen: int = 65535,
        promisc: bool = True,
        timeout_ms: int = 100,
        bpf: str = DEFAULT_BPF,
        max_batch: int = 8192,
        max_queue_bytes: int = 64 * 1024 * 1024,
        idle_s: float = 0.2,
    ) -> None:
        if not interface:
            raise ConfigError("interface: expected a network interface name; got an empty string.")
        for name, value, low in (
            ("snaplen", snaplen, 64),
            ("max_batch", max_batch, 1),
            ("timeout_ms", timeout_ms, 1),
        ):
            if value < low:
                raise ConfigError(f"{name} must be >= {low}; got {value!r} instead.")
        self.interface = interface
        self.snaplen, self.promisc, self.timeout_ms, self.bpf = snaplen, promisc, timeout_ms, bpf
        self.max_batch, self.max_queue_bytes, self.idle_s = max_batch, max_queue_bytes, idle_s
        self.stats = SourceStats()
        self._cap: Any = None
        self.linktype = 1
        self._queue: queue.SimpleQueue[PacketBatch] = queue.SimpleQueue()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def name(self) -> str:
        return self.interface

    # -- lifecycle ----------------------------------------------------------------------
    def open(self) -> None:
        """Open the interface and start the capture thread (done by :meth:`batches` if needed)."""
        if self._cap is not None:
            return
        try:
            import pcapy
        except ImportError as exc:
            raise CaptureError(
                f"live capture on {self.interface!r} needs pcapy-ng and libpcap: {_INSTALL_HINT} ({exc})."
            ) from None
        try:
            cap = pcapy.open_live(self.interface, self.snaplen, int(self.promisc), self.timeout_ms)
            if self.bpf:
                cap.setfilter(self.bpf)
            # libpcap's TPACKET_V3 read timeout does not fire on an idle link, so poll the
            # selectable fd ourselves and read without blocking
            cap.setnonblock(True)
        except pcapy.PcapError as exc:
            raise CaptureError(
                f"interface {self.interface!r}: cannot capture ({exc}); it must exist and capturing "
                "needs root or CAP_NET_RAW."
            ) from None
        self._cap = cap
        self.linktype = int(cap.datalink())
        self._halt.clear()
        self._thread = threading.Thread(
            target=self._capture_loop, name=f"capture-{self.interface}", daemon=True
        )
        self._thread.start()
        logger.info("capturing on %s (linktype %d, filter %r)", self.interface, self.linktype, self.bpf)

    def close(self) -> None:
        """Stop the capture thread and close the handle (stats are kept)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._cap is not None:
            self._update_pcap_stats()
            try:
                self._cap.close()
            except Exception:  # noqa: BLE001 - closing twice or a vanished interface is not an error here
                pass
            self._cap = None

    def __enter__(self) -> LiveSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumer side ------------------------------------------------------------------
    def batches(self, stop: threading.Event | None = None) -> Iterator[PacketBatch]:
        """Yield captured batches (and empty ones while idle) until ``stop`` is set."""
        self.open()
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                if self._error is not None:
                    raise CaptureError(f"interface {self.interface!r}: capture failed ({self._error}).")
                try:
                    batch = self._queue.get(timeout=self.idle_s)
                except queue.Empty:
                    yield _empty_batch(self.linktype)
                    continue
                with self._lock:
                    self._queued_bytes -= len(batch.frames.buffer)
                self.stats.packets += len(batch)
                yield batch
        finally:
            self.close()

    # -- capture thread -----------------------------------------------------------------
    def _capture_loop(self) -> None:
        cap = self._cap
        fd = cap.getfd()
        has_batch = hasattr(cap, "next_batch")
        next_stats = 0.0
        try:
            while not self._halt.is_set():
                now = time.monotonic()
                if now >= next_stats:
                    # pcap_stats only from this thread: libpcap handles are not thread-safe
                    self._update_pcap_stats()
                    next_stats = now + 0.5
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                batch = self._read_batch(cap) if has_batch else self._read_one_by_one(cap)
                if batch is None:
                    continue
                size = len(batch.frames.buffer)
                with self._lock:
                    full = self._queued_bytes + size > self.max_queue_bytes
                    if not full:
                        self._queued_bytes += size
                if full:
                    self.stats.queue_dropped += len(batch)
                    continue
                self._queue.put(batch)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer thread, which raises it
            self._error = exc
            logger.error("capture on %s failed: %s", self.interface, exc)

    def _read_batch(self, cap: Any) -> PacketBatch | None:
        data, packed = cap.next_batch(self.max_batch)
        if not packed:
            return None
        meta = np.frombuffer(packed, dtype=np.uint32).reshape(-1, 4)
        # sec + usec / 1e6 in float64: the same value dpkt's pcap reader gives
        ts = meta[:, 0].astype(np.float64) + meta[:, 1] / 1e6
        offsets = meta[:, 2].astype(np.int64)
        lengths = meta[:, 3].astype(np.int64)
        buf = np.frombuffer(data + bytes(PAD), dtype=np.uint8)
        return PacketBatch(ts, Frames(buf, offsets, lengths), self.linktype, lengths + 16)

    def _read_one_by_one(self, cap: Any) -> PacketBatch | None:
        # pcapy-ng releases without next_batch(): read packet by packet until none is ready
        ts: list[float] = []
        frames: list[bytes] = []
        while len(frames) < self.max_batch:
            hdr, data = cap.next()
            if hdr is None:
                break
            sec, usec = hdr.getts()
            ts.append(sec + usec / 1e6)
            frames.append(bytes(data))
        if not frames:
            return None
        fr = Frames.from_list(frames)
        return PacketBatch(np.asarray(ts), fr, self.linktype, fr.lengths + 16)

    def _update_pcap_stats(self) -> None:
        if self._cap is None:
            return
        try:
            recv, drop, ifdrop = self._cap.stats()
        except Exception:  # noqa: BLE001 - stats are best effort (some links have none)
            return
        self.stats.pcap_received, self.stats.pcap_dropped, self.stats.if_dropped = (
            int(recv),
            int(drop),
            int(ifdrop),
        )
