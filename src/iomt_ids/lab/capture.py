"""Capture the lab's bridge with ``tcpdump`` into a classic pcap, and count packets.

``tcpdump`` runs inside the hub namespace on ``br0`` (promiscuous, so it sees every
frame the bridge forwards between any two lab hosts, once), writes an Ethernet
pcap, and stops at ``max_packets`` or when :meth:`Capture.stop` is called.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import dpkt

from iomt_ids.exceptions import CaptureError
from iomt_ids.lab.netns import BRIDGE, HUB, Lab

__all__ = ["Capture", "count_packets"]

logger = logging.getLogger(__name__)


def count_packets(path: str | Path) -> dict[str, int]:
    """Count the frames of a pcap by kind: ``total``, ``ipv4``, ``arp``, ``other``.

    Raises
    ------
    CaptureError
        The file is missing or is not a readable classic pcap.
    """
    path = Path(path)
    counts: Counter[str] = Counter()
    try:
        with path.open("rb") as fh:
            for _, buf in dpkt.pcap.Reader(fh):
                counts["total"] += 1
                ethertype = int.from_bytes(buf[12:14], "big") if len(buf) >= 14 else -1
                counts["ipv4" if ethertype == 0x0800 else "arp" if ethertype == 0x0806 else "other"] += 1
    except (OSError, ValueError, dpkt.NeedData) as exc:
        raise CaptureError(f"{path}: cannot read as a classic pcap: {exc}") from exc
    return {k: counts.get(k, 0) for k in ("total", "ipv4", "arp", "other")}


class Capture:
    """One running ``tcpdump`` on the lab bridge.

    Parameters
    ----------
    lab: the running lab.
    path: pcap to write.
    max_packets: tcpdump stops by itself after this many packets (``-c``).
    """

    def __init__(self, lab: Lab, path: str | Path, max_packets: int = 2_000_000) -> None:
        self.lab = lab
        self.path = Path(path)
        self.max_packets = max_packets
        self.argv: tuple[str, ...] = (
            "tcpdump", "-i", BRIDGE, "-n", "-U", "-s", "0", "-Z", "root", "-c", str(max_packets),
            "-w", str(self.path),
        )  # fmt: skip
        self._proc: subprocess.Popen | None = None
        self.captured: int | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start tcpdump and wait until it listens."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        log = self.lab.log_dir / "hub-tcpdump.log"
        self._proc = self.lab.start(HUB, list(self.argv), log_name="hub-tcpdump")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and b"listening on" in log.read_bytes():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        text = log.read_text(errors="replace") if log.exists() else ""
        raise CaptureError(f"tcpdump on {BRIDGE} did not start: {text.strip()[-300:]}")

    def stop(self) -> int:
        """Stop tcpdump (SIGINT, so it flushes the file) and return the packets it captured."""
        if self._proc is None:
            raise CaptureError("capture was never started.")
        self.lab.stop_process(self._proc, sig=signal.SIGINT, grace=5.0)
        log = (self.lab.log_dir / "hub-tcpdump.log").read_text(errors="replace")
        found = re.findall(r"(\d+) packets? captured", log)
        self.captured = int(found[-1]) if found else None
        if not self.path.exists():
            raise CaptureError(f"tcpdump wrote no file at {self.path}: {log.strip()[-300:]}")
        return self.captured if self.captured is not None else count_packets(self.path)["total"]
