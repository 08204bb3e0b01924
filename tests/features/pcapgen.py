"""Build frames with dpkt and write them as pcap / pcapng / SLL captures, for the feature tests."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import dpkt

A = bytes([192, 168, 1, 10])
B = bytes([192, 168, 1, 20])
T0 = 1_700_000_000.0
MAC1, MAC2 = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"


def eth(payload: bytes | dpkt.Packet, etype: int = dpkt.ethernet.ETH_TYPE_IP, pad_to: int = 0) -> bytes:
    frame = bytes(dpkt.ethernet.Ethernet(src=MAC1, dst=MAC2, type=etype, data=payload))
    return frame + b"\x00" * max(0, pad_to - len(frame))


def ip4(l4: bytes | dpkt.Packet, p: int, src: bytes = A, dst: bytes = B, ttl: int = 64) -> dpkt.ip.IP:
    return dpkt.ip.IP(src=src, dst=dst, p=p, ttl=ttl, data=l4)


def tcp_frame(
    sport: int = 40000,
    dport: int = 80,
    flags: int = dpkt.tcp.TH_SYN,
    opts: bytes = b"",
    data: bytes = b"",
    src: bytes = A,
    dst: bytes = B,
    ttl: int = 64,
    pad_to: int = 0,
) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, opts=opts, data=data)
    seg.off = (20 + len(opts)) // 4
    return eth(ip4(seg, dpkt.ip.IP_PROTO_TCP, src, dst, ttl), pad_to=pad_to)


def udp_frame(
    sport: int, dport: int, data: bytes = b"", src: bytes = A, dst: bytes = B, ttl: int = 64
) -> bytes:
    dg = dpkt.udp.UDP(sport=sport, dport=dport, data=data, ulen=8 + len(data))
    return eth(ip4(dg, dpkt.ip.IP_PROTO_UDP, src, dst, ttl))


def icmp_frame(ttl: int = 64, pad_to: int = 0) -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
    return eth(ip4(icmp, dpkt.ip.IP_PROTO_ICMP, ttl=ttl), pad_to=pad_to)


def igmp_frame() -> bytes:
    igmp = dpkt.igmp.IGMP(type=0x16, group=bytes([224, 0, 0, 251]))
    return eth(ip4(igmp, dpkt.ip.IP_PROTO_IGMP, dst=bytes([224, 0, 0, 251]), ttl=1))


def arp_frame(spa: bytes = A, tpa: bytes = B, pad_to: int = 0) -> bytes:
    arp = dpkt.arp.ARP(sha=MAC1, spa=spa, tha=b"\x00" * 6, tpa=tpa)
    return eth(arp, dpkt.ethernet.ETH_TYPE_ARP, pad_to=pad_to)


def ipv6_frame() -> bytes:
    return eth(b"\x60" + b"\x00" * 39, dpkt.ethernet.ETH_TYPE_IP6)


def write_pcap_dpkt(path: Path, packets: Sequence[tuple[float, bytes]], linktype: int = 1) -> Path:
    """Classic pcap, microseconds, host byte order, written by dpkt's Writer."""
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=262144, linktype=linktype)
        for ts, frame in packets:
            w.writepkt(frame, ts=ts)
    return path


def write_pcap(
    path: Path,
    packets: Sequence[tuple[int, int, bytes]],
    *,
    endian: str = "<",
    nano: bool = False,
    linktype: int = 1,
) -> Path:
    """Classic pcap by hand: ``packets`` are (seconds, fraction in µs or ns, frame)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for sec, frac, frame in packets:
        out.append(struct.pack(endian + "IIII", sec, frac, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def _block(endian: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def pcapng_shb(endian: str = "<") -> bytes:
    return _block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def pcapng_idb(endian: str = "<", linktype: int = 1, tsresol: int | None = None) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, 262144)
    if tsresol is not None:
        body += struct.pack(endian + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
        body += struct.pack(endian + "HH", 0, 0)
    return _block(endian, 1, body)


def pcapng_epb(ts_units: int, frame: bytes, endian: str = "<", iface: int = 0) -> bytes:
    body = struct.pack(endian + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(frame), len(frame))
    return _block(endian, 6, body + frame)


def pcapng_spb(frame: bytes, endian: str = "<") -> bytes:
    return _block(endian, 3, struct.pack(endian + "I", len(frame)) + frame)


def sll(frame: bytes) -> bytes:
    """Ethernet frame -> Linux cooked (SLL) frame with the same payload."""
    etype = frame[12:14]
    return struct.pack(">HHH8s", 0, 1, 6, MAC1 + b"\x00\x00") + etype + frame[14:]


def sll2(frame: bytes) -> bytes:
    """Ethernet frame -> Linux cooked v2 (SLL2) frame with the same payload."""
    etype = frame[12:14]
    return etype + b"\x00\x00" + struct.pack(">IHBB8s", 2, 1, 0, 6, MAC1 + b"\x00\x00") + frame[14:]
