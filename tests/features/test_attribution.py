"""Window meta names the initiator: the attacker of scans, floods and MQTT attacks, not the target's replies.

Each scenario is a packet stream built with dpkt (the target answers as a real
host would), mixed with benign IoMT traffic (devices publishing to an MQTT
broker, its ACKs, DNS, ARP), cut into W = 10 and W = 100 windows.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import dpkt
import numpy as np
import pandas as pd
import pytest

from iomt_ids.features import WindowExtractor
from iomt_ids.features.dissect import (
    DPORT,
    DST,
    FLAGS,
    HLEN,
    KIND,
    KIND_ICMP,
    N_INT,
    PROTO,
    SPORT,
    SRC,
    L,
    PacketRecords,
    dissect,
)
from iomt_ids.features.packets import Frames
from iomt_ids.features.v1 import V1State
from iomt_ids.features.windows import _initiator_flows, v2_window_rows

from .pcapgen import T0, eth, ip4, tcp_frame, udp_frame

BROKER = "10.0.0.1"
DEVICES = [f"10.0.0.{i}" for i in range(10, 18)]
ATTACKER, ATTACKER2 = "10.0.0.66", "10.0.0.67"
TARGET = "10.0.0.5"
SYN, ACK, RST, FIN, PSH, URG = (
    getattr(dpkt.tcp, f"TH_{f}") for f in ("SYN", "ACK", "RST", "FIN", "PUSH", "URG")
)
ECE, CWR = 0x40, 0x80
MSS = b"\x02\x04\x05\xb4"
CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd"
CONNACK = b"\x20\x02\x00\x00"


# -- frame builders (addresses as dotted quads) ------------------------------------------
def tcp(
    src: str, dst: str, sport: int, dport: int, flags: int, data: bytes = b"", opts: bytes = b""
) -> bytes:
    return tcp_frame(sport, dport, flags, opts, data, socket.inet_aton(src), socket.inet_aton(dst), pad_to=60)


def udp(src: str, dst: str, sport: int, dport: int, data: bytes = b"") -> bytes:
    return udp_frame(sport, dport, data, socket.inet_aton(src), socket.inet_aton(dst))


def icmp(src: str, dst: str, icmp_type: int, code: int = 0, data: bytes | dpkt.Packet = b"") -> bytes:
    msg = dpkt.icmp.ICMP(type=icmp_type, code=code, data=data)
    return eth(ip4(msg, dpkt.ip.IP_PROTO_ICMP, socket.inet_aton(src), socket.inet_aton(dst)), pad_to=60)


def echo(src: str, dst: str, reply: bool = False, seq: int = 1, code: int = 0) -> bytes:
    return icmp(src, dst, 0 if reply else 8, code, dpkt.icmp.ICMP.Echo(id=7, seq=seq, data=b"x" * 56))


def port_unreachable(src: str, dst: str, probe: bytes) -> bytes:
    """The ICMP error ``src`` sends back for the UDP ``probe`` frame: the probe's IP header and 8 bytes."""
    quoted = dpkt.icmp.ICMP.Unreach(data=probe[14:42])
    return icmp(src, dst, dpkt.icmp.ICMP_UNREACH, dpkt.icmp.ICMP_UNREACH_PORT, quoted)


def arp(src: str, dst: str) -> bytes:
    a = dpkt.arp.ARP(sha=b"\x02" * 6, spa=socket.inet_aton(src), tha=b"\x00" * 6, tpa=socket.inet_aton(dst))
    return eth(a, dpkt.ethernet.ETH_TYPE_ARP, pad_to=60)


# -- traffic --------------------------------------------------------------------------------
def benign(rng: np.random.Generator, n: int) -> list[bytes]:
    """Devices publishing to the broker (and its ACKs), DNS to the broker, ARP."""
    out = []
    for _ in range(n):
        i = int(rng.integers(len(DEVICES)))
        dev, port = DEVICES[i], 40000 + i
        r = rng.random()
        if r < 0.45:
            out.append(
                tcp(dev, BROKER, port, 1883, PSH | ACK, b"\x30\x20" + b"m" * int(rng.integers(20, 200)))
            )
        elif r < 0.8:
            out.append(tcp(BROKER, dev, 1883, port, ACK))
        elif r < 0.88:
            out.append(udp(dev, BROKER, 50000 + i, 53, b"q" * 30))
        elif r < 0.95:
            out.append(udp(BROKER, dev, 53, 50000 + i, b"r" * 60))
        else:
            out.append(arp(dev, BROKER))
    return out


def mix(attack: list[bytes], rng: np.random.Generator, per10: int) -> list[bytes]:
    """Insert benign packets into ``attack`` so that every 10 consecutive packets hold ``per10`` of them."""
    blocks = -(-len(attack) // (10 - per10))
    other = iter(benign(rng, blocks * per10))
    stream = iter(attack)
    out = []
    for _ in range(blocks):
        slots = set(rng.choice(10, per10, replace=False).tolist())
        out.extend(next(other) if j in slots else next(stream, b"") for j in range(10))
    return [f for f in out if f]


def ping_sweep(rng: np.random.Generator) -> list[bytes]:
    """Echo requests to every address of three /24s; one host in three answers."""
    out = []
    for net in (1, 2, 3):
        for host in range(1, 255):
            dst = f"10.0.{net}.{host}"
            out.append(echo(ATTACKER, dst, seq=host))
            if host % 3 == 0:
                out.append(echo(dst, ATTACKER, reply=True, seq=host))
    return out


def syn_port_scan(rng: np.random.Generator) -> list[bytes]:
    """nmap -sS: SYN to 1000 ports from one source port; RST+ACK when closed, SYN+ACK (then RST) when open."""
    out = []
    for port in rng.permutation(np.arange(1, 1001)).tolist():
        out.append(tcp(ATTACKER, TARGET, 61000, port, SYN, opts=MSS))
        if port in (22, 80, 443, 502):
            out += [
                tcp(TARGET, ATTACKER, port, 61000, SYN | ACK, opts=MSS),
                tcp(ATTACKER, TARGET, 61000, port, RST),
            ]
        else:
            out.append(tcp(TARGET, ATTACKER, port, 61000, RST | ACK))
    return out


def os_scan(rng: np.random.Generator) -> list[bytes]:
    """nmap -O probes (SEQ, IE, ECN, T2-T7, U1) to open port 80 and closed 31337, repeated; with replies."""
    out = []
    for rep in range(25):
        base = 45000 + 20 * rep
        for i in range(6):  # SEQ: SYNs with options to the open port, answered SYN+ACK, then our RST
            out += [
                tcp(ATTACKER, TARGET, base + i, 80, SYN, opts=MSS + b"\x01\x03\x03\x0a"),
                tcp(TARGET, ATTACKER, 80, base + i, SYN | ACK, opts=MSS),
                tcp(ATTACKER, TARGET, base + i, 80, RST),
            ]
        out += [echo(ATTACKER, TARGET, seq=rep, code=9), echo(TARGET, ATTACKER, reply=True, seq=rep)]
        out += [echo(ATTACKER, TARGET, seq=rep + 1), echo(TARGET, ATTACKER, reply=True, seq=rep + 1)]
        out += [  # ECN
            tcp(ATTACKER, TARGET, base + 6, 80, SYN | ECE | CWR, opts=MSS),
            tcp(TARGET, ATTACKER, 80, base + 6, SYN | ACK | ECE, opts=MSS),
        ]
        out.append(tcp(ATTACKER, TARGET, base + 7, 80, 0))  # T2: null, no answer
        out += [
            tcp(ATTACKER, TARGET, base + 8, 80, SYN | FIN | URG | PSH),
            tcp(TARGET, ATTACKER, 80, base + 8, SYN | ACK),
        ]
        out += [tcp(ATTACKER, TARGET, base + 9, 80, ACK), tcp(TARGET, ATTACKER, 80, base + 9, RST)]  # T4
        for j, flags in enumerate((SYN, ACK, FIN | PSH | URG)):  # T5-T7 to the closed port
            out.append(tcp(ATTACKER, TARGET, base + 10 + j, 31337, flags))
            out.append(tcp(TARGET, ATTACKER, 31337, base + 10 + j, RST | ACK if flags != ACK else RST))
        probe = udp(ATTACKER, TARGET, base + 13, 40125, b"C" * 300)  # U1
        out += [probe, port_unreachable(TARGET, ATTACKER, probe)]
    return out


def syn_flood(rng: np.random.Generator, replies: int = 1) -> list[bytes]:
    """SYNs from incrementing source ports to open port 80, each answered by ``replies`` SYN+ACKs."""
    out = []
    for sport in range(1025, 1025 + 1500):
        out.append(tcp(ATTACKER, TARGET, sport, 80, SYN))
        out += [tcp(TARGET, ATTACKER, 80, sport, SYN | ACK, opts=MSS)] * replies
    return out


def udp_flood(rng: np.random.Generator) -> list[bytes]:
    """Two attackers, random ports, 512-byte datagrams; the target sends a (rate-limited) port unreachable."""
    out = []
    for i in range(3000):
        src = (ATTACKER, ATTACKER2)[i % 2]
        probe = udp(src, TARGET, int(rng.integers(1024, 65536)), int(rng.integers(1024, 65536)), b"u" * 512)
        out.append(probe)
        if i % 10 == 3:
            out.append(port_unreachable(TARGET, src, probe))
    return out


def icmp_flood(rng: np.random.Generator) -> list[bytes]:
    """Echo requests, each answered by an echo reply."""
    out = []
    for seq in range(2000):
        out += [echo(ATTACKER, TARGET, seq=seq), echo(TARGET, ATTACKER, reply=True, seq=seq)]
    return out


def mqtt_connect_flood(rng: np.random.Generator) -> list[bytes]:
    """New TCP connections to the broker: handshake, CONNECT, CONNACK, ACK; never closed."""
    out = []
    for sport in range(30000, 30600):
        out += [
            tcp(ATTACKER, BROKER, sport, 1883, SYN, opts=MSS),
            tcp(BROKER, ATTACKER, 1883, sport, SYN | ACK, opts=MSS),
            tcp(ATTACKER, BROKER, sport, 1883, ACK),
            tcp(ATTACKER, BROKER, sport, 1883, PSH | ACK, CONNECT),
            tcp(BROKER, ATTACKER, 1883, sport, PSH | ACK, CONNACK),
            tcp(ATTACKER, BROKER, sport, 1883, ACK),
        ]
    return out


def mqtt_publish_flood(rng: np.random.Generator) -> list[bytes]:
    """One connection; QoS 1 PUBLISHes, each answered by a PUBACK and a bare ACK (the replies outnumber)."""
    out = [
        tcp(ATTACKER, BROKER, 50123, 1883, SYN, opts=MSS),
        tcp(BROKER, ATTACKER, 1883, 50123, SYN | ACK, opts=MSS),
        tcp(ATTACKER, BROKER, 50123, 1883, ACK),
    ]
    for i in range(1500):
        out += [
            tcp(
                ATTACKER,
                BROKER,
                50123,
                1883,
                PSH | ACK,
                b"\x32\x40\x00\x03t/x" + i.to_bytes(2, "big") + b"p" * 59,
            ),
            tcp(BROKER, ATTACKER, 1883, 50123, PSH | ACK, b"\x40\x02" + i.to_bytes(2, "big")),
            tcp(BROKER, ATTACKER, 1883, 50123, ACK),
        ]
    return out


def _meta(frames: list[bytes], window: int) -> pd.DataFrame:
    """The meta of the full windows of ``frames``."""
    ex = WindowExtractor(window=window)
    batch = ex.feed(T0 + np.arange(len(frames)) * 1e-4, frames)
    assert len(batch) == len(frames) // window
    return batch.meta


Scenario = Callable[[np.random.Generator], list[bytes]]
# (traffic, attackers, target, benign packets per 10, dest_port, proto); target None: the first probed host
CASES: dict[str, tuple[Scenario, set[str], str | None, int, int | None, str]] = {
    "ping_sweep": (ping_sweep, {ATTACKER}, None, 3, 0, "ICMP"),
    "syn_port_scan": (syn_port_scan, {ATTACKER}, TARGET, 3, None, "TCP"),
    "os_scan": (os_scan, {ATTACKER}, TARGET, 3, None, None),
    "syn_flood": (syn_flood, {ATTACKER}, TARGET, 2, 80, "TCP"),
    "syn_flood_retransmitted": (lambda r: syn_flood(r, replies=2), {ATTACKER}, TARGET, 2, 80, "TCP"),
    "udp_flood_two_sources": (udp_flood, {ATTACKER, ATTACKER2}, TARGET, 2, None, "UDP"),
    "icmp_echo_flood": (icmp_flood, {ATTACKER}, TARGET, 2, 0, "ICMP"),
    "mqtt_connect_flood": (mqtt_connect_flood, {ATTACKER}, BROKER, 3, 1883, "TCP"),
    "mqtt_publish_flood": (mqtt_publish_flood, {ATTACKER}, BROKER, 3, 1883, "TCP"),
}


@pytest.mark.parametrize("window", [10, 100])
@pytest.mark.parametrize("case", list(CASES))
def test_every_attack_window_names_the_attacker(case: str, window: int) -> None:
    scenario, attackers, target, per10, dest_port, proto = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)) + window)
    frames = mix(scenario(rng), rng, per10)
    meta = _meta(frames, window)
    assert len(meta) >= 10
    bad = meta[~meta["src_ip"].isin(attackers)]
    assert bad.empty, f"{case}: {len(bad)} of {len(meta)} windows not attributed to the attacker\n{bad}"
    if target is not None:
        assert (meta["dest_ip"] == target).all()
    else:  # a sweep has no one target: a probed host
        assert meta["dest_ip"].str.fullmatch(r"10\.0\.[123]\.\d+").all()
    if dest_port is not None:
        assert (meta["dest_port"] == dest_port).all()
    if proto is not None:
        assert (meta["proto"] == proto).all()
    if case == "mqtt_publish_flood":
        assert (meta["src_port"] == 50123).all()


@pytest.mark.parametrize(
    ("attack", "replies"),
    [
        # replies equal to the attacker's packets, then outnumbering them
        ([tcp(ATTACKER, TARGET, 2000 + i, 80, SYN) for i in range(4)],
         [tcp(TARGET, ATTACKER, 80, 2000 + i, SYN | ACK) for i in range(4)]),
        ([tcp(ATTACKER, TARGET, 2000 + i, 80, SYN) for i in range(3)],
         [tcp(TARGET, ATTACKER, 80, 2000 + i // 2, SYN | ACK) for i in range(6)]),
        ([echo(ATTACKER, TARGET, seq=i) for i in range(4)],
         [echo(TARGET, ATTACKER, True, i) for i in range(4)]),
        ([udp(ATTACKER, TARGET, 3000 + i, 9999, b"u" * 64) for i in range(3)],
         [port_unreachable(TARGET, ATTACKER, udp(ATTACKER, TARGET, 3000, 9999))] * 5),
    ],
)  # fmt: skip
def test_replies_that_equal_or_outnumber_the_attacker_do_not_win(
    attack: list[bytes], replies: list[bytes]
) -> None:
    benign_pkts = [tcp(DEVICES[0], BROKER, 40000, 1883, PSH | ACK, b"\x30\x05t/x" + b"p" * 3)]
    benign_pkts += [tcp(BROKER, DEVICES[1], 1883, 40001, ACK)]
    # the replies come first: the old rule (most frequent flow, ties to the first seen) named the target
    frames = (replies + attack + benign_pkts)[:10]
    row = _meta(frames, 10).iloc[0]
    assert (row["src_ip"], row["dest_ip"]) == (ATTACKER, TARGET)


@pytest.mark.parametrize("window", [10, 100])
def test_benign_windows_name_a_device_to_broker_flow(window: int) -> None:
    frames = benign(np.random.default_rng(window), 40 * window)
    meta = _meta(frames, window)
    assert meta["src_ip"].isin(DEVICES).all() and (meta["dest_ip"] == BROKER).all()
    assert set(meta["dest_port"]) <= {1883, 53, 0}


def test_benign_publisher_beats_more_numerous_broker_acks() -> None:
    dev = DEVICES[3]
    pub = tcp(dev, BROKER, 40003, 1883, PSH | ACK, b"\x30\x05t/x" + b"p" * 3)
    ack = tcp(BROKER, dev, 1883, 40003, ACK)
    frames = [ack, pub, ack, ack, pub, ack, udp(BROKER, DEVICES[0], 53, 50000, b"r" * 40), pub, ack, ack]
    row = _meta(frames, 10).iloc[0]
    assert (row["src_ip"], row["dest_ip"], row["src_port"], row["dest_port"], row["proto"]) == (
        dev, BROKER, 40003, 1883, "TCP",
    )  # fmt: skip


def test_source_ties_go_to_most_packets_then_first_seen() -> None:
    a, b, c = DEVICES[:3]
    # a: one SYN (score 8), b: four ordinary packets (8), c: SYN (8) seen later than a
    frames = [udp(b, BROKER, 5000, 6000)] * 4 + [
        tcp(a, BROKER, 4000, 1883, SYN),
        tcp(c, BROKER, 4001, 1883, SYN),
    ]
    assert _meta(frames, 6).iloc[0]["src_ip"] == b
    frames = [udp(b, BROKER, 5000, 6000)] * 3 + [
        tcp(a, BROKER, 4000, 1883, SYN),
        tcp(c, BROKER, 4001, 1883, SYN),
    ]
    assert _meta(frames, 5).iloc[0]["src_ip"] == a
    # within the chosen source: the most frequent destination, then its most frequent flow
    # (3 packets each: ties go to the destination seen first)
    frames = [udp(a, TARGET, 1, 2), udp(a, BROKER, 7, 8), udp(a, BROKER, 5, 6), udp(a, BROKER, 5, 6)]
    frames += [udp(a, TARGET, 3, 4), udp(a, TARGET, 1, 2)]
    row = _meta(frames, 6).iloc[0]
    assert (row["dest_ip"], row["src_port"], row["dest_port"]) == (TARGET, 1, 2)


def test_icmp_type_and_code_are_kept_but_never_reach_the_features() -> None:
    frames = [echo(ATTACKER, TARGET, seq=1, code=9), echo(TARGET, ATTACKER, reply=True)]
    frames += [
        port_unreachable(TARGET, ATTACKER, udp(ATTACKER, TARGET, 1, 2)),
        icmp(ATTACKER, TARGET, 13, 0, b"\0" * 16),
    ]
    frames += [tcp(ATTACKER, TARGET, 1234, 80, SYN), udp(ATTACKER, TARGET, 53, 5353), arp(ATTACKER, TARGET)]
    rng = np.random.default_rng(3)
    frames += [frames[int(i)] for i in rng.integers(0, len(frames), 193)]
    ts = T0 + np.arange(len(frames)) * 1e-3
    rec, _ = dissect(ts, Frames.from_list(frames), 1)
    icmp_rows = (rec.ints[KIND] & KIND_ICMP) != 0
    assert [(int(rec.ints[SPORT, i]), int(rec.ints[DPORT, i])) for i in range(4)] == [
        (8, 9),
        (0, 0),
        (3, 3),
        (13, 0),
    ]
    assert icmp_rows[:4].all() and not icmp_rows[4:7].any()
    # features with the ICMP type/code in the port rows equal those with zeros there, bit for bit
    zeroed = rec.ints.copy()
    zeroed[[SPORT, DPORT]] = np.where(icmp_rows, 0, zeroed[[SPORT, DPORT]])
    iat = np.r_[0.0, np.diff(ts)]
    for n in (10, 100):
        got = v2_window_rows(rec, iat, n)
        want = v2_window_rows(PacketRecords(rec.ts, zeroed), iat, n)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(V1State().records(rec), V1State().records(PacketRecords(rec.ts, zeroed)))
    # and the meta reports no ports for ICMP
    row = _meta(frames[:4] * 3, 10).iloc[0]
    assert (row["src_ip"], row["proto"], row["src_port"], row["dest_port"]) == (ATTACKER, "ICMP", 0, 0)


def test_non_first_fragment_of_icmp_is_not_decoded() -> None:
    msg = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"x" * 40))
    pkt = ip4(msg, dpkt.ip.IP_PROTO_ICMP, socket.inet_aton(ATTACKER), socket.inet_aton(TARGET))
    pkt.offset = 80  # bytes: not the first fragment
    rec, _ = dissect(np.array([T0]), Frames.from_list([eth(pkt)]), 1)
    assert int(rec.ints[KIND, 0]) & KIND_ICMP == 0 and int(rec.ints[SPORT, 0]) == 0


def _reference_attribution(win: np.ndarray) -> tuple[int, int, int, int, int]:
    """The documented rule (``WindowBatch.meta``), one window of ``ints`` (fields, n), in plain Python."""

    def service(p: int) -> bool:
        return p < 1024 or p in (1883, 8883, 5683)

    pkts = []
    for i, (kind, flags, sp, dp, proto, src, dst, length, hlen) in enumerate(
        zip(*(win[f].tolist() for f in (KIND, FLAGS, SPORT, DPORT, PROTO, SRC, DST, L, HLEN)), strict=True)
    ):
        tcp, ports, icmp = kind & 4, kind & 12, kind & 16
        syn = bool(tcp) and flags & 0x12 == 0x02
        resp = not syn and (
            (bool(ports) and service(sp) and not service(dp))
            or (bool(tcp) and (flags & 0x12 == 0x12 or bool(flags & 4)))
            or (bool(icmp) and sp in (0, 3, 4, 5, 11, 12, 14, 16, 18))
        )
        bare_ack = bool(tcp) and flags & 0x3F == 0x10 and length - hlen <= 40
        score = 8 if syn else 0 if bare_ack else 1 if resp else 4 if icmp and sp in (8, 13, 15, 17) else 2
        actor, peer, osp, odp = (dst, src, dp, sp) if resp else (src, dst, sp, dp)
        pkts.append((i, actor, peer, (osp, odp, proto, kind & 2), score, not resp, bool(ports)))

    def best(groups: dict) -> object:  # key -> (rank..., first index)
        return max(groups, key=lambda g: (*groups[g][:-1], -groups[g][-1]))

    actors: dict = {}
    for i, a, _, _, s, _, _ in pkts:
        sc, c, f = actors.get(a, (0, 0, i))
        actors[a] = (sc + s, c + 1, f)
    me = best(actors)
    peers: dict = {}
    for i, a, p, _, _, own, _ in pkts:
        if a == me:
            o, c, f = peers.get(p, (0, 0, i))
            peers[p] = (o + own, c + 1, f)
    peer = best(peers)
    flows: dict = {}
    for i, a, p, fl, _, own, _ in pkts:
        if a == me and p == peer:
            o, c, f = flows.get(fl, (0, 0, i))
            flows[fl] = (o + own, c + 1, f)
    flow = best(flows)
    first = flows[flow][-1]
    has_ports = pkts[first][-1]
    return me, peer, flow[0] if has_ports else 0, flow[1] if has_ports else 0, first


def test_vectorised_attribution_matches_the_plain_rule() -> None:
    """Random windows, few hosts and ports (many ties): the NumPy code against a per-window Python loop."""
    rng = np.random.default_rng(7)
    kinds = np.array([1 | 4, 1 | 8, 1 | 16, 2, 1])
    for trial in range(120):
        n = int(rng.choice([1, 2, 3, 7, 10, 16, 17, 100]))
        k = int(rng.integers(1, 30))
        m = k * n
        hosts = rng.choice(
            [1, 2, 3, 0xFFFFFFFF, 0xC0A80001, 0x80000000], int(rng.integers(1, 6)), replace=False
        )
        ints = np.zeros((N_INT, m), np.int64)
        ints[SRC], ints[DST] = rng.choice(hosts, m), rng.choice(hosts, m)
        ints[KIND] = rng.choice(kinds, m)
        kind = ints[KIND]
        ints[PROTO] = np.select([kind & 4 > 0, kind & 8 > 0, kind & 16 > 0, kind == 2], [6, 17, 1, 0], 2)
        ports = np.array([80, 1883, 40000, 40001, 53, 5683, 61000])
        icmp = kind & 16 > 0
        ints[SPORT] = np.where(
            kind & 12 > 0, rng.choice(ports, m), np.where(icmp, rng.choice([0, 3, 8, 11, 13, 5], m), 0)
        )
        ints[DPORT] = np.where(kind & 12 > 0, rng.choice(ports, m), np.where(icmp, rng.integers(0, 4, m), 0))
        ints[FLAGS] = np.where(
            kind & 4 > 0, rng.choice([0x02, 0x12, 0x10, 0x18, 0x04, 0x14, 0x01, 0xC2, 0], m), 0
        )
        got = np.stack(_initiator_flows(ints, n), axis=1).tolist()
        want = [list(_reference_attribution(ints[:, i * n : (i + 1) * n])) for i in range(k)]
        assert got == want, f"trial {trial}, n={n}"


@pytest.mark.parametrize("window", [10, 100])
@pytest.mark.parametrize(
    ("case", "sources"),
    [("udp_flood_two_sources", 2), ("syn_flood", 1), ("icmp_echo_flood", 1), ("mqtt_connect_flood", 1),
     ("mqtt_publish_flood", 1)],
)  # fmt: skip
def test_n_sources_counts_the_hosts_that_flood_the_target(case: str, sources: int, window: int) -> None:
    """Benign devices talking to the same target (the broker) with single packets do not count as sources."""
    scenario, _, _, per10, _, _ = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)) + window)
    meta = _meta(mix(scenario(rng), rng, per10), window)
    assert (meta["n_sources"] == sources).mean() >= 0.9, meta["n_sources"].value_counts()


def test_n_sources_of_benign_windows_is_small() -> None:
    meta = _meta(benign(np.random.default_rng(3), 2000), 10)
    assert (meta["n_sources"] <= 1).mean() > 0.8  # (it only renames alerting DoS/DDoS windows)


@pytest.mark.parametrize("window", [10, 100])
def test_a_subscriber_acking_a_forwarded_publish_flood_is_not_the_source(window: int) -> None:
    """QoS 0 flood: the broker forwards every PUBLISH to a subscriber, which only sends bare ACKs back."""
    sub = DEVICES[0]
    out = []
    for i in range(1500):
        body = b"\x30\x40\x00\x03t/x" + i.to_bytes(2, "big") + b"p" * 59
        out += [
            tcp(ATTACKER, BROKER, 50123, 1883, PSH | ACK, body),
            tcp(BROKER, sub, 1883, 41000, PSH | ACK, body),
            tcp(sub, BROKER, 41000, 1883, ACK),
        ]
    meta = _meta(out, window)
    assert (meta["src_ip"] == ATTACKER).all() and (meta["dest_ip"] == BROKER).all()
