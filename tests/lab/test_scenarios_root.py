"""Short end-to-end runs (root) of a flood, an MQTT attack and ARP spoofing.

Each test runs one scenario for a few seconds with :func:`run_lab`, then reads the
capture with dpkt and checks that it holds the attack's own packets, that every
address is a lab address (plus the kernel's IGMP reports, 0.0.0.0 -> 224.0.0.22),
and that no lab namespace is left behind.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from iomt_ids.lab.netns import clean_stale_namespaces, lab_namespaces
from iomt_ids.lab.runner import LabRunConfig, ManifestEntry, run_lab
from iomt_ids.lab.topology import LAB_SUBNET

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("needs_lab")]

ATTACKER = "10.77.0.101"
BROKER = "10.77.0.10"
DEVICES = ("10.77.0.21", "10.77.0.22", "10.77.0.23", "10.77.0.24")


def _frames(pcap: Path) -> Iterator[dpkt.ethernet.Ethernet]:
    with pcap.open("rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            yield dpkt.ethernet.Ethernet(buf)


def _run(tmp_path: Path, stem: str) -> tuple[ManifestEntry, list[dpkt.ethernet.Ethernet]]:
    """Run ``stem`` for 3 s; check the status, the addresses and the cleanup; return the frames."""
    lab_id = "t" + uuid.uuid4().hex[:8]
    cfg = LabRunConfig(tmp_path, (stem,), seconds=3, warmup=1, tail=0.5, lab_id=lab_id)
    try:
        (entry,) = run_lab(cfg)
        left = [n for n in lab_namespaces() if lab_id in n]
    finally:
        clean_stale_namespaces(lab_id)  # only matters if the run failed
    assert left == []
    assert entry.status == "ok", entry.error
    pcap = tmp_path / f"{stem}_lab.pcap"
    frames = list(_frames(pcap))
    assert frames and entry.packets["total"] == len(frames)
    _assert_lab_addresses_only(frames)
    return entry, frames


def _assert_lab_addresses_only(frames: list[dpkt.ethernet.Ethernet]) -> None:
    """Every IPv4/ARP address is in 10.77.0.0/24, except IGMP reports 0.0.0.0 -> 224.0.0.22."""
    outside = set()
    for eth in frames:
        data = eth.data
        if isinstance(data, dpkt.ip.IP):
            pair = (socket.inet_ntoa(data.src), socket.inet_ntoa(data.dst))
            if data.p == dpkt.ip.IP_PROTO_IGMP and pair == ("0.0.0.0", "224.0.0.22"):
                continue
        elif isinstance(data, dpkt.arp.ARP):
            pair = (socket.inet_ntoa(data.spa), socket.inet_ntoa(data.tpa))
        else:
            continue  # IPv6 and other link traffic carry no IPv4 address
        outside |= {a for a in pair if ipaddress.IPv4Address(a) not in LAB_SUBNET}
    assert not outside, sorted(outside)


def _tcp_from_attacker_to_broker(frames: list[dpkt.ethernet.Ethernet], port: int) -> list[dpkt.tcp.TCP]:
    out = []
    for eth in frames:
        ip = eth.data
        if (
            isinstance(ip, dpkt.ip.IP)
            and isinstance(ip.data, dpkt.tcp.TCP)
            and socket.inet_ntoa(ip.src) == ATTACKER
            and socket.inet_ntoa(ip.dst) == BROKER
            and ip.data.dport == port
        ):
            out.append(ip.data)
    return out


def test_syn_flood_end_to_end(tmp_path: Path) -> None:
    """TCP_IP-DoS-SYN: bare SYNs from the attacker to the broker's port 1883."""
    entry, frames = _run(tmp_path, "TCP_IP-DoS-SYN")
    segs = _tcp_from_attacker_to_broker(frames, 1883)
    syns = [s for s in segs if s.flags & dpkt.tcp.TH_SYN and not s.flags & dpkt.tcp.TH_ACK]
    # hping3 sends a few hundred per second; the broker answers (SYN-ACK or RST)
    assert len(syns) > 100, len(syns)
    assert len({s.sport for s in syns}) > 10  # hping3 moves the source port
    assert entry.packets["total"] > len(syns)


def test_mqtt_connect_flood_end_to_end(tmp_path: Path) -> None:
    """MQTT-DoS-Connect_Flood: TCP to 1883 from the attacker carrying MQTT CONNECT packets."""
    _, frames = _run(tmp_path, "MQTT-DoS-Connect_Flood")
    segs = _tcp_from_attacker_to_broker(frames, 1883)
    connects = [s for s in segs if s.data[:1] == b"\x10" and b"\x00\x04MQTT" in s.data[:12]]
    assert len(connects) > 20, len(connects)
    assert len({s.sport for s in connects}) > 20  # one connection per CONNECT
    # the broker answers on the same connections (CONNACK 0x20 or a reset when full)
    answers = [
        eth.data
        for eth in frames
        if isinstance(eth.data, dpkt.ip.IP)
        and isinstance(eth.data.data, dpkt.tcp.TCP)
        and socket.inet_ntoa(eth.data.src) == BROKER
        and socket.inet_ntoa(eth.data.dst) == ATTACKER
        and eth.data.data.sport == 1883
    ]
    assert answers


def test_arp_spoofing_end_to_end(tmp_path: Path) -> None:
    """ARP_Spoofing: ARP replies with the attacker's MAC claiming the broker's and the devices' IPs."""
    _, frames = _run(tmp_path, "ARP_Spoofing")
    arps = [eth for eth in frames if isinstance(eth.data, dpkt.arp.ARP)]
    # the attacker's MAC: the source of its own IPv4 packets or ARP requests
    attacker_macs = {
        eth.src
        for eth in frames
        if (isinstance(eth.data, dpkt.ip.IP) and socket.inet_ntoa(eth.data.src) == ATTACKER)
        or (isinstance(eth.data, dpkt.arp.ARP) and socket.inet_ntoa(eth.data.spa) == ATTACKER)
    }
    assert len(attacker_macs) == 1, attacker_macs
    (mac,) = attacker_macs
    forged = [
        a.data
        for a in arps
        if a.data.op == dpkt.arp.ARP_OP_REPLY
        and a.data.sha == mac
        and socket.inet_ntoa(a.data.spa) != ATTACKER
    ]
    claimed = {socket.inet_ntoa(r.spa) for r in forged}
    # both directions: the broker's IP told to the devices, each device's IP told to the broker
    assert claimed == {BROKER, *DEVICES}, sorted(claimed)
    told_to_devices = {socket.inet_ntoa(r.tpa) for r in forged if socket.inet_ntoa(r.spa) == BROKER}
    assert told_to_devices == set(DEVICES), sorted(told_to_devices)
    assert {socket.inet_ntoa(r.tpa) for r in forged if socket.inet_ntoa(r.spa) != BROKER} == {BROKER}
