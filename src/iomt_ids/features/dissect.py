"""Bulk dissection of frames into the per-packet primitives of the spec (§2.3).

All frames of a batch are decoded at once with NumPy gathers at fixed offsets.
The rules follow what dpkt 1.9.8 (CIC's parser) does, so that the same frames
are accepted and decoded:

* Ethernet II only, EtherType 0x0800 (IPv4) or 0x0806 (ARP); an 802.1Q tag keeps
  the outer EtherType 0x8100, so tagged frames are dropped, as in CIC's code.
* IPv4 needs 20 bytes and IHL >= 5 (the version nibble is not checked, as in
  dpkt); otherwise the frame is skipped (``malformed_ipv4``). The transport
  payload is cut to the IP total length (the whole rest when it is 0).
* TCP is decoded when the protocol is 6, the fragment offset is 0, 20 bytes are
  there and the data offset is >= 5; its header length is ``20 + len(options)``
  with the options cut to what was captured. UDP: protocol 17, offset 0, 8 bytes.
* ARP needs 28 bytes (dpkt's fixed layout), else ``malformed_arp``.
* Linux cooked captures (SLL, SLL2): the protocol field plays the EtherType and
  the frame length is the payload length + 14 (spec §4.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    PAD,
    SUPPORTED_LINKTYPES,
    Frames,
)

__all__ = ["KIND_ARP", "KIND_IPV4", "KIND_TCP", "KIND_UDP", "PacketRecords", "dissect"]

KIND_IPV4 = 1
KIND_ARP = 2
KIND_TCP = 4
KIND_UDP = 8

# columns of PacketRecords.ints
L, PROTO, TTL, HLEN, FLAGS, SPORT, DPORT, SRC, DST, KIND = range(10)
N_INT = 10

# (link header length, offset of the EtherType-like field)
_LINK = {LINKTYPE_ETHERNET: (14, 12), LINKTYPE_LINUX_SLL: (16, 14), LINKTYPE_LINUX_SLL2: (20, 0)}
_SKIP_ETHERTYPES = {0x86DD: "ipv6", 0x8100: "vlan", 0x88A8: "vlan"}


@dataclass
class PacketRecords:
    """Accepted packets, one row each: ``ts`` (float64) and ``ints`` (int64, 10 columns).

    ``ints`` columns: frame length L, IP protocol (0 for ARP), TTL (0 for ARP),
    transport header length, TCP flags byte, source port, destination port,
    source IPv4 (ARP sender), destination IPv4 (ARP target), kind bits
    (1 IPv4, 2 ARP, 4 TCP decoded, 8 UDP decoded).
    """

    ts: np.ndarray
    ints: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> PacketRecords:
        return cls(np.empty(0, np.float64), np.empty((0, N_INT), np.int64))

    def __getitem__(self, index: slice) -> PacketRecords:
        return PacketRecords(self.ts[index], self.ints[index])

    @staticmethod
    def concat(parts: list[PacketRecords]) -> PacketRecords:
        parts = [p for p in parts if len(p)]
        if not parts:
            return PacketRecords.empty()
        if len(parts) == 1:
            return parts[0]
        return PacketRecords(np.concatenate([p.ts for p in parts]), np.concatenate([p.ints for p in parts]))


def _u16(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (arr[idx].astype(np.int64) << 8) | arr[idx + 1]


def _u32(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (_u16(arr, idx) << 16) | _u16(arr, idx + 2)


def dissect(ts: np.ndarray, frames: Frames, linktype: int) -> tuple[PacketRecords, dict[str, int]]:
    """Decode a batch of frames; return the accepted records and skip counts by reason.

    Parameters
    ----------
    ts : numpy.ndarray
        float64 timestamps, one per frame.
    frames : Frames
        The frames (see :class:`~iomt_ids.features.packets.Frames`).
    linktype : int
        pcap link type of all frames (1, 113 or 276).

    Returns
    -------
    records : PacketRecords
        The IPv4 and ARP frames, in order.
    skipped : dict[str, int]
        Frames not accepted, by reason.
    """
    if linktype not in _LINK:
        raise CaptureError(
            f"unsupported link type {linktype}; expected one of "
            + ", ".join(f"{k} ({v})" for k, v in SUPPORTED_LINKTYPES.items())
            + "."
        )
    n = len(frames)
    if n == 0:
        return PacketRecords.empty(), {}
    arr = frames.buffer
    o = np.asarray(frames.offsets, dtype=np.int64)
    caplen = np.asarray(frames.lengths, dtype=np.int64)
    if int(o[-1]) + int(caplen[-1]) + PAD > len(arr) or int(o.max()) + PAD > len(arr):
        arr = np.concatenate([arr, np.zeros(PAD, np.uint8)])
    hdr, type_at = _LINK[linktype]
    skipped: dict[str, int] = {}

    short = caplen < hdr
    etype = np.where(short, -1, _u16(arr, o + type_at))
    is_ip = etype == 0x0800
    is_arp = etype == 0x0806
    n0 = o + hdr
    netlen = caplen - hdr

    # IPv4
    vhl = arr[n0].astype(np.int64)
    ihl4 = (vhl & 15) << 2
    ip_ok = is_ip & (netlen >= 20) & (ihl4 >= 20)
    arp_ok = is_arp & (netlen >= 28)
    keep = ip_ok | arp_ok

    nshort = int(short.sum())
    if nshort:
        skipped["truncated_frame"] = nshort
    rejected = ~keep & ~short
    if rejected.any():
        et = etype[rejected]
        bad_ip = int((et == 0x0800).sum())
        bad_arp = int((et == 0x0806).sum())
        if bad_ip:
            skipped["malformed_ipv4"] = bad_ip
        if bad_arp:
            skipped["malformed_arp"] = bad_arp
        other = et[(et != 0x0800) & (et != 0x0806)]
        if len(other):
            for code, reason in _SKIP_ETHERTYPES.items():
                c = int((other == code).sum())
                if c:
                    skipped[reason] = skipped.get(reason, 0) + c
            rest = int(np.isin(other, list(_SKIP_ETHERTYPES), invert=True).sum())
            if rest:
                skipped["non_ip"] = rest

    if not keep.all():
        idx = np.flatnonzero(keep)
        ts, o, caplen, n0, netlen, ihl4, ip_ok = (
            ts[idx],
            o[idx],
            caplen[idx],
            n0[idx],
            netlen[idx],
            ihl4[idx],
            ip_ok[idx],
        )
    m = len(o)
    ints = np.zeros((m, N_INT), dtype=np.int64)
    if m == 0:
        return PacketRecords(np.asarray(ts, np.float64), ints), skipped
    ints[:, L] = netlen + 14
    ip = ip_ok
    arp = ~ip
    proto = np.where(ip, arr[n0 + 9], 0).astype(np.int64)
    ints[:, PROTO] = proto
    ints[:, TTL] = np.where(ip, arr[n0 + 8], 0)
    totlen = _u16(arr, n0 + 2)
    frag = _u16(arr, n0 + 6) & 0x1FFF
    ip_end = np.where(totlen != 0, np.minimum(totlen, netlen), netlen)
    plen = np.maximum(ip_end - ihl4, 0)
    t0 = n0 + ihl4
    first = ip & (frag == 0)
    doff4 = (arr[t0 + 12].astype(np.int64) >> 4) << 2
    tcp = first & (proto == 6) & (plen >= 20) & (doff4 >= 20)
    udp = first & (proto == 17) & (plen >= 8)
    ports = tcp | udp
    ints[:, HLEN] = np.where(tcp, np.minimum(doff4, plen), np.where(udp, 8, 0))
    ints[:, FLAGS] = np.where(tcp, arr[t0 + 13], 0)
    ints[:, SPORT] = np.where(ports, _u16(arr, t0), 0)
    ints[:, DPORT] = np.where(ports, _u16(arr, t0 + 2), 0)
    # addresses: IPv4 src/dst at 12/16, ARP sender/target protocol address at 14/24
    ints[:, SRC] = _u32(arr, n0 + np.where(ip, 12, 14))
    ints[:, DST] = _u32(arr, n0 + np.where(ip, 16, 24))
    ints[:, KIND] = (
        ip.astype(np.int64) * KIND_IPV4
        + arp * KIND_ARP
        + tcp.astype(np.int64) * KIND_TCP
        + udp.astype(np.int64) * KIND_UDP
    )
    return PacketRecords(np.asarray(ts, np.float64), ints), skipped
