"""Known traffic for the detector tests, built with dpkt: benign IoMT-ish chatter and a SYN flood.

Everything here is synthetic and labelled by construction: the benign section is
MQTT (TCP 1883) publishes and ACKs, DNS queries, ARP and pings among a few hosts;
the flood is TCP SYNs from one source (``FLOODER``) to one victim port.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import numpy as np

BROKER = "10.0.0.1"
HOSTS = [f"10.0.0.{i}" for i in range(2, 10)]
FLOODER = "10.0.0.66"
VICTIM = "10.0.0.5"
#: Not 80: the dataset floods do not target HTTP, and HTTP = 1 makes a flood window unlike every training row.
VICTIM_PORT = 8080
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _mac(ip: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(ip)


def _eth(src_ip: str, dst_ip: str, payload: dpkt.Packet, etype: int = dpkt.ethernet.ETH_TYPE_IP) -> bytes:
    frame = bytes(dpkt.ethernet.Ethernet(src=_mac(src_ip), dst=_mac(dst_ip), type=etype, data=payload))
    return frame + b"\x00" * max(0, 60 - len(frame))  # Ethernet minimum, as on the wire


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, data: bytes = b"", ttl: int = 64) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, data=data, seq=1, win=64240)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, ttl=ttl, data=seg)
    ip.len = 20 + len(bytes(seg))
    return _eth(src, dst, ip)


def udp(src: str, dst: str, sport: int, dport: int, data: bytes, ttl: int = 64) -> bytes:
    dg = dpkt.udp.UDP(sport=sport, dport=dport, data=data, ulen=8 + len(data))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=17, ttl=ttl, data=dg)
    ip.len = 20 + 8 + len(data)
    return _eth(src, dst, ip)


def icmp(src: str, dst: str) -> bytes:
    msg = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=7, seq=1, data=b"x" * 32))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=1, ttl=64, data=msg)
    ip.len = 20 + len(bytes(msg))
    return _eth(src, dst, ip)


def arp(src: str, dst: str) -> bytes:
    a = dpkt.arp.ARP(sha=_mac(src), spa=socket.inet_aton(src), tha=b"\x00" * 6, tpa=socket.inet_aton(dst))
    return _eth(src, "255.255.255.255", a, dpkt.ethernet.ETH_TYPE_ARP)


def benign(n: int, rng: np.random.Generator, t0: float, gap: float = 0.01) -> list[tuple[float, bytes]]:
    """``n`` benign packets starting at ``t0``, exponential gaps of mean ``gap`` seconds."""
    out: list[tuple[float, bytes]] = []
    t = t0
    for _ in range(n):
        t += float(rng.exponential(gap))
        h = HOSTS[int(rng.integers(len(HOSTS)))]
        r = rng.random()
        if r < 0.45:
            size = int(rng.integers(40, 300))
            frame = tcp(
                h, BROKER, 40000 + HOSTS.index(h), 1883, dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, b"m" * size
            )
        elif r < 0.8:
            frame = tcp(BROKER, h, 1883, 40000 + HOSTS.index(h), dpkt.tcp.TH_ACK)
        elif r < 0.9:
            frame = udp(h, BROKER, 50000 + int(rng.integers(1000)), 53, b"q" * int(rng.integers(20, 60)))
        elif r < 0.96:
            frame = arp(h, BROKER)
        else:
            frame = icmp(h, BROKER)
        out.append((t, frame))
    return out


def syn_flood(
    n: int, rng: np.random.Generator, t0: float, src: str = FLOODER, gap: float = 2e-5
) -> list[tuple[float, bytes]]:
    """``n`` TCP SYNs from ``src`` to VICTIM:VICTIM_PORT, random source ports, ``gap`` seconds apart."""
    out = []
    t = t0
    for _ in range(n):
        t += float(rng.exponential(gap))
        out.append((t, tcp(src, VICTIM, int(rng.integers(1024, 65535)), VICTIM_PORT, dpkt.tcp.TH_SYN)))
    return out


def mixed_capture(
    rng: np.random.Generator, n_benign: int = 1500, n_flood: int = 3000
) -> list[tuple[float, bytes]]:
    """Benign, then a SYN flood (with some benign packets interleaved), then benign again."""
    first = benign(n_benign, rng, T0)
    t = first[-1][0]
    flood = syn_flood(n_flood, rng, t)
    background = benign(n_flood // 50, rng, t, gap=flood[-1][0] - t)
    middle = sorted(flood + background, key=lambda p: p[0])
    last = benign(n_benign // 2, rng, middle[-1][0])
    return first + middle + last


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """Write ``(ts, frame)`` pairs as a classic Ethernet pcap (microsecond timestamps)."""
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in packets:
            w.writepkt(frame, ts=ts)
    return path
