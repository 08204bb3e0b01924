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
* ICMP (protocol 1, offset 0, 4 bytes): its type and code are kept in the port
  fields, for attributing windows to a source only; no feature reads them.
* ARP needs 28 bytes (dpkt's fixed layout), else ``malformed_arp``.
* Linux cooked captures (SLL, SLL2): the protocol field plays the EtherType and
  the frame length is the payload length + 14 (spec §4.6).
* Two frame lengths are kept. ``L`` is the captured length (v2's rule, and what
  window attribution reads). ``LV1`` is dpkt's ``len(eth)``, which v1 uses (spec
  §5): for IPv4 it is 14 + the IP header + the payload cut to the IP total length,
  so Ethernet padding is not counted (a padded 60-byte SYN gives 54); for ARP it
  is the captured length, padding included. Known gaps, not followed here: dpkt
  also re-sizes some payloads it decodes further (SCTP from its chunk length
  fields, IP-in-IP and IPv6-in-IPv4 from the inner length, ICMP errors from the
  quoted header), so such packets can differ from dpkt when those inner lengths
  disagree with the bytes carried.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from iomt_ids.exceptions import CaptureError
from iomt_ids.features.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    PAD,
    SUPPORTED_LINKTYPES,
    Frames,
)

__all__ = ["KIND_ARP", "KIND_ICMP", "KIND_IPV4", "KIND_TCP", "KIND_UDP", "PacketRecords", "dissect"]

KIND_IPV4 = 1
KIND_ARP = 2
KIND_TCP = 4
KIND_UDP = 8
KIND_ICMP = 16

# columns of PacketRecords.ints
L, PROTO, TTL, HLEN, FLAGS, SPORT, DPORT, SRC, DST, KIND, LV1 = range(11)
N_INT = 11

# (link header length, offset of the EtherType-like field)
_LINK = {LINKTYPE_ETHERNET: (14, 12), LINKTYPE_LINUX_SLL: (16, 14), LINKTYPE_LINUX_SLL2: (20, 0)}
_SKIP_ETHERTYPES = {0x86DD: "ipv6", 0x8100: "vlan", 0x88A8: "vlan"}


@dataclass
class PacketRecords:
    """Accepted packets: ``ts`` (float64, m) and ``ints`` (int64, shape (11, m): one row per field).

    ``ints`` rows: frame length L (captured bytes, v2's rule), IP protocol (0 for
    ARP), TTL (0 for ARP), transport header length, TCP flags byte, source port,
    destination port, source IPv4 (ARP sender), destination IPv4 (ARP target),
    kind bits (1 IPv4, 2 ARP, 4 TCP decoded, 8 UDP decoded, 16 ICMP decoded), and
    the v1 frame length LV1 (dpkt's ``len(eth)``: IPv4 padding dropped, spec §5).

    For ICMP packets (kind bit 16) the source and destination port rows hold
    the ICMP type and code instead; features read the port rows of TCP and UDP
    packets only, and the window meta uses the type to tell requests from replies.
    """

    ts: np.ndarray
    ints: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> PacketRecords:
        return cls(np.empty(0, np.float64), np.empty((N_INT, 0), np.int64))

    def __getitem__(self, index: slice) -> PacketRecords:
        return PacketRecords(self.ts[index], self.ints[:, index])

    @staticmethod
    def concat(parts: list[PacketRecords]) -> PacketRecords:
        parts = [p for p in parts if len(p)]
        if not parts:
            return PacketRecords.empty()
        if len(parts) == 1:
            return parts[0]
        return PacketRecords(
            np.concatenate([p.ts for p in parts]), np.concatenate([p.ints for p in parts], axis=1)
        )


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

    # one gather: the link header plus the first 28 bytes of the network header
    blk = sliding_window_view(arr, hdr + 28)[o]
    short = caplen < hdr
    etype = (blk[:, type_at].astype(np.int32) << 8) | blk[:, type_at + 1]
    etype[short] = -1
    is_ip = etype == 0x0800
    is_arp = etype == 0x0806
    netlen = caplen - hdr
    ihl4 = (blk[:, hdr] & 15).astype(np.int64) << 2
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
        ts, o, netlen, ihl4, ip_ok, blk = ts[idx], o[idx], netlen[idx], ihl4[idx], ip_ok[idx], blk[idx]
    m = len(o)
    if m == 0:
        return PacketRecords(np.asarray(ts, np.float64), np.zeros((N_INT, 0), np.int64)), skipped
    ints = np.empty((N_INT, m), dtype=np.int64)  # every row is written below
    net = blk[:, hdr:]
    ints[L] = netlen + 14
    ip = ip_ok
    arp = ~ip
    any_arp = bool(arp.any())
    proto = np.where(ip, net[:, 9], 0) if any_arp else net[:, 9]
    ints[PROTO] = proto
    ints[TTL] = np.where(ip, net[:, 8], 0) if any_arp else net[:, 8]
    totlen = (net[:, 2].astype(np.int64) << 8) | net[:, 3]
    frag = ((net[:, 6].astype(np.int64) & 0x1F) << 8) | net[:, 7]
    ip_end = np.where(totlen != 0, np.minimum(totlen, netlen), netlen)
    plen = np.maximum(ip_end - ihl4, 0)
    # dpkt: len(eth) = 14 + 20 + len(opts) (cut to what was captured) + the payload cut to the total length
    ints[LV1] = np.where(ip, 14 + np.minimum(ihl4, netlen) + plen, netlen + 14)
    t0 = o + hdr + ihl4
    tb = sliding_window_view(arr, 14)[t0]  # the first 14 bytes of the transport header
    first = ip & (frag == 0)
    doff4 = (tb[:, 12] >> 4).astype(np.int64) << 2
    tcp = first & (proto == 6) & (plen >= 20) & (doff4 >= 20)
    udp = first & (proto == 17) & (plen >= 8)
    ports = tcp | udp
    ints[HLEN] = np.where(tcp, np.minimum(doff4, plen), np.where(udp, 8, 0))
    ints[FLAGS] = np.where(tcp, tb[:, 13], 0)
    be16 = np.ascontiguousarray(tb[:, :4]).view(">u2")
    # ICMP: type and code in the port rows (used by the window meta only, never by features)
    icmp = first & (proto == 1) & (plen >= 4)
    ints[SPORT] = np.where(ports, be16[:, 0], np.where(icmp, tb[:, 0], 0))
    ints[DPORT] = np.where(ports, be16[:, 1], np.where(icmp, tb[:, 1], 0))
    # addresses: IPv4 src/dst at 12/16, ARP sender/target protocol address at 14/24
    ip_addr = np.ascontiguousarray(net[:, 12:20]).view(">u4")
    if any_arp:
        spa = np.ascontiguousarray(net[:, 14:18]).view(">u4")[:, 0]
        tpa = np.ascontiguousarray(net[:, 24:28]).view(">u4")[:, 0]
        ints[SRC] = np.where(ip, ip_addr[:, 0], spa)
        ints[DST] = np.where(ip, ip_addr[:, 1], tpa)
    else:
        ints[SRC] = ip_addr[:, 0]
        ints[DST] = ip_addr[:, 1]
    ints[KIND] = ip * KIND_IPV4 + arp * KIND_ARP + tcp * KIND_TCP + udp * KIND_UDP + icmp * KIND_ICMP
    return PacketRecords(np.asarray(ts, np.float64), ints), skipped
